"""Nurture: fulfilment of every inquiry, the gate, and the programs' steps."""
