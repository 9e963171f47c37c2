"""The `crypto` pipeline: G-Research Crypto Forecasting (source document 002).

Modules by concern: `definitions` (file and column names, dates and option
checks; standard library only), `assets` (the 14 assets and their weights),
`data` (the Kaggle download and the offline generator), `target` (the
competition's Target recipe), `load` (CSV to Arrow), `tables` (the Arrow IPC
files the steps hand each other), `features` (TA-Lib features), `models`
(LightGBM), `evaluation` (the competition metric and the report) and `steps`
(the thin KFP wrappers).
"""
