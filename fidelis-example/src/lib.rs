//! The Fidelis banking ledger.
