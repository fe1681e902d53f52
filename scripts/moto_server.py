"""moto's server (same arguments as `moto_server`) with one Secrets Manager deviation of
moto 5.2 corrected, so tests see what AWS does.

moto keeps its own idea of the current version (`default_version_id`) beside the staging
labels, and `UpdateSecretVersionStage` moving AWSCURRENT does not update it. So after a
rotation's finishSecret, a `PutSecretValue` labelled AWSCURRENT gives AWSPREVIOUS to the stale
version and leaves two versions labelled AWSCURRENT, and `GetSecretValue(AWSCURRENT)` returns
the older one; `GetSecretValue` without a stage returns a stale version too. AWS moves the
label: one AWSCURRENT, always the latest.
"""

import sys

from moto.secretsmanager.models import SecretsManagerBackend
from moto.server import main

_update_secret_version_stage = SecretsManagerBackend.update_secret_version_stage


def update_secret_version_stage(
    self, secret_id, version_stage, remove_from_version_id, move_to_version_id
):
    result = _update_secret_version_stage(
        self, secret_id, version_stage, remove_from_version_id, move_to_version_id
    )
    if version_stage == "AWSCURRENT" and move_to_version_id:
        self.secrets[secret_id].default_version_id = move_to_version_id
    return result


SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage

if __name__ == "__main__":
    sys.exit(main())
