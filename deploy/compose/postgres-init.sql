-- One database per bureau: each bureau owns its ledger (ARCHITECTURE.md); they share a server
-- here only to keep the laptop setup small.
CREATE DATABASE yibao_transfer_out OWNER yibao;
CREATE DATABASE yibao_transfer_in OWNER yibao;
