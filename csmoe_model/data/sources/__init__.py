"""Imagery readers of the cache for corpora that pack images into stores (Major TOM, SSL4EO-S12).

Paths into stores follow :mod:`csmoe_common.store_path` (``file#row=..``, ``#sample=..``,
``#window=..``); see ``data_manifests/README.md``. Each reader takes a group of paths into one
store and decodes what they share once.
"""
