"""The checkpoint series an entry point scores or tunes: opened by name, the default one built first when missing.

Entry points that need a series call ``open_or_build_series``; the pretrain command is imported only when the
default series has to be built.
"""

from __future__ import annotations

from amuro.core.settings import PretrainSettings
from amuro.models.series import DEFAULT_SERIES, Series, find_pretrain_run, open_series


def open_or_build_series(model: str, experiment_id: str, trust_remote_code: bool = False) -> Series:
    """``open_series``, first building the default series with pretrain's defaults when it does not exist yet."""
    if model.strip() == DEFAULT_SERIES and find_pretrain_run(experiment_id, DEFAULT_SERIES) is None:
        from mlflow.tracking import MlflowClient

        from amuro.commands.pretrain import pretrain

        print(f"series {DEFAULT_SERIES!r} does not exist yet: building it with pretrain's defaults")
        pretrain(PretrainSettings(series=DEFAULT_SERIES, experiment=MlflowClient().get_experiment(experiment_id).name))
    return open_series(model, experiment_id=experiment_id, trust_remote_code=trust_remote_code)
