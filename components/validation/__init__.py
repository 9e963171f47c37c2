"""Data validation, TFX-style: statistics per run, a schema, anomalies and drift.

TFX runs StatisticsGen, SchemaGen and ExampleValidator (TFDV); this package is
their equivalent as plain functions, and `components.release.validation_step`
is the one step that runs them in every pipeline:

- `statistics`: a table's (or images') statistics as one JSON document with a
  `format_version`: per column its type, count, missing, min, max, mean,
  standard deviation, quantiles and a histogram on quantile edges; per
  categorical column its domain (docs/validation.md describes the format);
- `schema`: the schema inferred from statistics (columns, types, domains, value
  ranges with a margin, missing rates), and the anomalies of a run's
  statistics against a stored schema;
- `drift`: the population stability index and the Jensen-Shannon distance per
  column, this run's values binned on the champion's histogram edges;
- `report`: the validation report (anomalies first, drift worst first, each
  column's histogram over the champion's).

Nothing here knows a pipeline, a model store or a cluster: the step reads the
champion's files from the model store and hands them in.
"""
