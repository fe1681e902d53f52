"""moto's server (same arguments as `moto_server`) with Secrets Manager deviations of moto 5.2
corrected, so tests see what AWS does.

1. moto keeps its own idea of the current version (`default_version_id`) beside the staging
   labels, and `UpdateSecretVersionStage` moving AWSCURRENT does not update it. So after a
   rotation's finishSecret, a `PutSecretValue` labelled AWSCURRENT gives AWSPREVIOUS to the
   stale version and leaves two versions labelled AWSCURRENT, and `GetSecretValue(AWSCURRENT)`
   returns the older one; `GetSecretValue` without a stage returns a stale version too. AWS
   moves the label: one AWSCURRENT, always the latest.
2. `RotateSecret` on a secret that has no value yet creates no version in moto. AWS creates the
   value-less AWSPENDING version the rotation function is then called with, as for any secret
   (its answer names that `VersionId`; a `DescribeSecret` of such a secret on AWS, quoted in
   aws-samples/aws-secrets-manager-rotation-lambdas issue 16, lists that version alone).
3. `UpdateSecretVersionStage` moving AWSCURRENT onto a version while no version carries it
   (the first rotation of such a secret) fails inside moto (IndexError, a 500). AWS needs
   `RemoveFromVersionId` only when the label is attached to another version (API reference,
   `MoveToVersionId`), so it moves the label.
4. moto's server answers requests on several threads, and its secrets store is a dict that
   every lookup iterates: a request that creates a secret while another looks one up makes
   the lookup fail ("dictionary changed size during iteration", a 500 for a call AWS would
   answer). Each Secrets Manager request is handled alone here: every AWS call is atomic.
5. moto does not keep a Lambda function's `LoggingConfig` (`iadvize-token check` reads it).
   AWS returns it for every function: `LogFormat` `Text` unless set, and with `JSON` an
   `ApplicationLogLevel` and `SystemLogLevel` of `INFO` unless set (Lambda developer guide,
   "Configuring advanced logging controls").
"""

import sys
import threading
import time
import uuid

from moto.awslambda.models import LambdaFunction
from moto.secretsmanager.models import SecretsManagerBackend
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.server import main

_one_request_at_a_time = threading.RLock()
_call_action = SecretsManagerResponse.call_action


def call_action(self):
    with _one_request_at_a_time:
        return _call_action(self)


_update_secret_version_stage = SecretsManagerBackend.update_secret_version_stage
_rotate_secret = SecretsManagerBackend.rotate_secret


def _carries(secret, stage):
    return any(stage in v["version_stages"] for v in secret.versions.values())


def update_secret_version_stage(
    self, secret_id, version_stage, remove_from_version_id, move_to_version_id
):
    secret = self.secrets.get(secret_id)
    if (
        secret is not None
        and version_stage == "AWSCURRENT"
        and not remove_from_version_id
        and move_to_version_id in getattr(secret, "versions", {})
        and not _carries(secret, "AWSCURRENT")
    ):
        secret.versions[move_to_version_id]["version_stages"].append("AWSCURRENT")
        secret.default_version_id = move_to_version_id
        return secret.arn, secret.name
    result = _update_secret_version_stage(
        self, secret_id, version_stage, remove_from_version_id, move_to_version_id
    )
    if version_stage == "AWSCURRENT" and move_to_version_id:
        self.secrets[secret_id].default_version_id = move_to_version_id
    return result


def rotate_secret(self, secret_id, client_request_token=None, **kwargs):
    secret = self.secrets.get(secret_id)
    versions = getattr(secret, "versions", None)
    if secret is not None and versions == {} and not secret.is_deleted():
        # A placeholder that moto's own code then labels AWSPENDING (without a value, as there
        # is no current value to copy when RotateImmediately is false).
        version_id = client_request_token or str(uuid.uuid4())
        versions[version_id] = {
            "createdate": int(time.time()),
            "version_id": version_id,
            "version_stages": [],
        }
        client_request_token = version_id
    return _rotate_secret(
        self, secret_id, client_request_token=client_request_token, **kwargs
    )


def _logging_config(function_name, asked):
    config = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{function_name}"}
    config.update(asked or {})
    if config["LogFormat"] == "JSON":
        config.setdefault("ApplicationLogLevel", "INFO")
        config.setdefault("SystemLogLevel", "INFO")
    else:
        config.pop("ApplicationLogLevel", None)
        config.pop("SystemLogLevel", None)
    return config


_function_init = LambdaFunction.__init__
_function_configuration = LambdaFunction.get_configuration
_function_update = LambdaFunction.update_configuration


def function_init(self, account_id, spec, *args, **kwargs):
    _function_init(self, account_id, spec, *args, **kwargs)
    self.logging_config = _logging_config(self.function_name, spec.get("LoggingConfig"))


def function_configuration(self, *args, **kwargs):
    config = _function_configuration(self, *args, **kwargs)
    config["LoggingConfig"] = dict(self.logging_config)
    return config


def function_update(self, updates, *args, **kwargs):
    if "LoggingConfig" in updates:
        asked = {**self.logging_config, **updates["LoggingConfig"]}
        self.logging_config = _logging_config(self.function_name, asked)
    return _function_update(self, updates, *args, **kwargs)


SecretsManagerResponse.call_action = call_action
SecretsManagerBackend.update_secret_version_stage = update_secret_version_stage
SecretsManagerBackend.rotate_secret = rotate_secret
LambdaFunction.__init__ = function_init
LambdaFunction.get_configuration = function_configuration
LambdaFunction.update_configuration = function_update

if __name__ == "__main__":
    sys.exit(main())
