"""Recovery ("recover"): optimise synthetic pixels against a frozen teacher."""
