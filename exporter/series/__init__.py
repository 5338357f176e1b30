"""The currency between the steps: typed rows, and the tables of instrument and attribute names."""
