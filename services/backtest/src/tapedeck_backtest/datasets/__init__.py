"""Datasets: raw files imported into NautilusTrader catalogs, one per dataset, and their rows."""
