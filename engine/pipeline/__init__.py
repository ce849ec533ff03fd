"""The tile pipeline and what it runs on.

The tile loop, tile geometry, memory budget, devices and Dask execution.
"""
