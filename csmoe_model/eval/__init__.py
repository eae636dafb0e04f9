"""Evaluation of frozen CSMoE encoders: embeddings, retrieval within and across sensors, probes.

Modules: :mod:`~csmoe_model.eval.metrics` (metric functions), :mod:`~csmoe_model.eval.embeddings`
(the embeddings Parquet), :mod:`~csmoe_model.eval.retrieval`, :mod:`~csmoe_model.eval.probe`,
:mod:`~csmoe_model.eval.embed` (computing embeddings from a run), :mod:`~csmoe_model.eval.report`
and :mod:`~csmoe_model.eval.options` (defaults and choices, shared with the CLI).
Heavy imports (scikit-learn, matplotlib) happen inside the functions that need them.
"""
