"""``csmoe study``: pretrain several models on several training sets, evaluate all the same way.

from csmoe_model.study import StudyConfig, run_study
run_study(StudyConfig(manifest="m.parquet", models=["csmae-tiny", "csmoe-tiny"], out="study",
                      budget=20))   # study/study.md, study.json, tradeoff.png
"""

from csmoe_model.study.run import StudyConfig, StudyResult, run_study

__all__ = ["StudyConfig", "StudyResult", "run_study"]
