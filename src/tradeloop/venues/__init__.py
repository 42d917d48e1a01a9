"""Connectivity: one folder per venue with the same files, plus the simulated venue."""
