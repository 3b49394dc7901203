//! Event-sourced aggregates of the snapshot and temporal tests: a `Wallet` (deposits and
//! withdrawals, a list and an optional field in its state) that follows the domain's
//! snapshot threshold, and a `Vault` with a threshold of its own. Include it with
//! `#[path = "support/wallet.rs"] mod wallet;` and build with `.discover_crate(module_path!())`.

#![allow(dead_code)]

use fidelis_core::prelude::*;

#[event(part_of = Wallet)]
pub struct Deposited {
    pub wallet_id: Identifier,
    pub amount: i64,
}

#[event(part_of = Wallet)]
pub struct Withdrawn {
    pub wallet_id: Identifier,
    pub amount: i64,
}

#[aggregate(event_sourced)]
#[derive(PartialEq)]
pub struct Wallet {
    pub balance: i64,
    pub operations: i64,
    pub largest: Option<i64>,
    pub amounts: Vec<i64>,
}

#[aggregate]
impl Wallet {
    #[apply]
    fn deposited(&mut self, event: &Deposited) {
        self.balance += event.amount;
        self.record(event.amount);
    }

    #[apply]
    fn withdrawn(&mut self, event: &Withdrawn) {
        self.balance -= event.amount;
        self.record(-event.amount);
    }
}

impl Wallet {
    fn record(&mut self, amount: i64) {
        self.operations += 1;
        self.largest = Some(self.largest.map_or(amount, |largest| largest.max(amount)));
        self.amounts.push(amount);
    }

    /// Raises a deposit (a positive amount) or a withdrawal (a negative one).
    pub fn apply_amount(&mut self, amount: i64) -> Result<()> {
        let wallet_id = self.id.clone();
        if amount >= 0 {
            self.raise(Deposited { wallet_id, amount })
        } else {
            self.raise(Withdrawn {
                wallet_id,
                amount: -amount,
            })
        }
    }
}

#[event(part_of = Vault)]
pub struct Stored {
    pub vault_id: Identifier,
    pub amount: i64,
}

#[aggregate(event_sourced, snapshot_threshold = 5)]
#[derive(PartialEq)]
pub struct Vault {
    pub total: i64,
}

#[aggregate]
impl Vault {
    #[apply]
    fn stored(&mut self, event: &Stored) {
        self.total += event.amount;
    }
}

/// Commits `amounts` to a new wallet, one unit of work, and gives its id.
pub async fn open_wallet(domain: &Domain, amounts: &[i64]) -> Identifier {
    let mut wallet = Wallet::create_new();
    let id = wallet.id.clone();
    for &amount in amounts {
        wallet.apply_amount(amount).expect("the event applies");
    }
    domain
        .repository::<Wallet>()
        .add(wallet)
        .await
        .expect("the wallet is stored");
    id
}

/// Commits `amounts` to a wallet, one unit of work.
pub async fn commit_amounts(domain: &Domain, id: &Identifier, amounts: &[i64]) {
    let repo = domain.repository::<Wallet>();
    let mut wallet = repo.get(id).await.expect("the wallet exists");
    for &amount in amounts {
        wallet.apply_amount(amount).expect("the event applies");
    }
    repo.add(wallet).await.expect("the events commit");
}

/// The wallet `amounts` make, replayed in memory without any storage.
pub fn replayed(id: &Identifier, amounts: &[i64]) -> Wallet {
    let mut wallet = Wallet::create_new();
    wallet.id = id.clone();
    for &amount in amounts {
        wallet.apply_amount(amount).expect("the event applies");
    }
    wallet
}
