"""Datasets and data modules: photos, prepared caches, synthetic faces."""
