"""Schema management: portable types and their lattice, the recipe's contract, drift, history."""
