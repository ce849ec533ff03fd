"""Sensors, degradation and simulation.

Spectral responses (data: the CSV files in this folder), PSFs and noise,
Wald-protocol simulation, blind SRF/PSF estimation from a pair.
"""
