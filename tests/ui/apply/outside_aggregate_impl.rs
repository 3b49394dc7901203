// #[apply] on a method of an impl block without #[aggregate].
use fidelis_core::prelude::*;

pub struct Ledger {
    pub balance: f64,
}

impl Ledger {
    #[apply]
    fn on_anything(&mut self, _event: &i32) {}
}

fn main() {}
