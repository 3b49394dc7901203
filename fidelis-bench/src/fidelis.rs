//! The ledger in Fidelis: the example domain (`fidelis_example::domain()`), memory storage,
//! sync processing, the `AccountSummary` projector on.

use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::{Domain, Identifier};
use fidelis_example::account::Account;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::dashboard::AccountSummary;

use crate::workload::{BenchError, Ledger, account_number, holder_name, opening_deposit};

/// The Fidelis ledger: the example domain, and a second domain on the same storage with the
/// aggregate cache off, for cold loads.
pub struct FidelisLedger {
    domain: Domain,
    cold: Domain,
}

impl FidelisLedger {
    /// The domain commands go through.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

impl Ledger for FidelisLedger {
    const NAME: &'static str = "fidelis";

    async fn new() -> Result<Self, BenchError> {
        let storage = MemoryStorage::new();
        let domain = fidelis_example::domain()
            .storage(storage.clone())
            .build()
            .await?;
        let cold = fidelis_example::domain()
            .storage(storage)
            .aggregate_cache(0)
            .build()
            .await?;
        Ok(Self { domain, cold })
    }

    async fn open(&mut self, i: usize) -> Result<String, BenchError> {
        let id = self
            .domain
            .process(OpenAccount {
                account_number: account_number(i),
                holder_name: holder_name(i),
                opening_deposit: opening_deposit(i),
            })
            .await?;
        Ok(id.into_string())
    }

    async fn deposit(&mut self, id: &str, amount: f64) -> Result<(), BenchError> {
        self.domain
            .process(MakeDeposit {
                account_id: Identifier::from(id),
                amount,
                reference: None,
            })
            .await?;
        Ok(())
    }

    async fn summary_balance(&mut self, id: &str) -> Result<f64, BenchError> {
        Ok(self
            .domain
            .repository::<AccountSummary>()
            .get(id)
            .await?
            .balance)
    }

    async fn load_balance(&mut self, id: &str) -> Result<f64, BenchError> {
        Ok(self.domain.repository::<Account>().get(id).await?.balance)
    }

    async fn cold_load_balance(&mut self, id: &str) -> Result<f64, BenchError> {
        Ok(self.cold.repository::<Account>().get(id).await?.balance)
    }
}
