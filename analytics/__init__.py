"""AR Collections Analytics: the ledger schema, loaders, KPIs, risk and forecasts.

No Streamlit import anywhere in this package: the dashboard is a thin layer on top of it.
"""
__version__ = "0.1.0"
