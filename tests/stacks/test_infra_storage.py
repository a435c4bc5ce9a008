"""Storage stack: key, buckets, secret; what matters for data safety and teardown."""

from __future__ import annotations

DATA_BUCKETS = ("raw", "processed", "artifacts", "capture", "monitoring")


def _buckets(synth) -> dict[str, dict]:
    """Bucket resources by purpose (from the name: <project>-<stage>-<purpose>-...)."""
    out = {}
    for res in synth.resources("Storage", "AWS::S3::Bucket").values():
        name = res["Properties"]["BucketName"]["Fn::Join"][1][0]
        purpose = name.removeprefix(f"boostline-{synth.stage}-").rstrip("-")
        out[purpose] = res
    return out


def _key_id(synth) -> str:
    (key_id,) = synth.resources("Storage", "AWS::KMS::Key")
    return key_id


def test_key_is_customer_managed_with_rotation(any_synth):
    keys = any_synth.resources("Storage", "AWS::KMS::Key")
    assert len(keys) == 1
    (key,) = keys.values()
    assert key["Properties"]["EnableKeyRotation"] is True
    aliases = any_synth.resources("Storage", "AWS::KMS::Alias")
    assert [a["Properties"]["AliasName"] for a in aliases.values()] == [
        f"alias/boostline-{any_synth.stage}"
    ]


def test_every_data_bucket_is_private_versioned_kms_and_logged(any_synth):
    buckets = _buckets(any_synth)
    assert set(buckets) == {*DATA_BUCKETS, "access-logs"}
    key_id = _key_id(any_synth)
    log_bucket = next(
        n
        for n, r in any_synth.template("Storage")["Resources"].items()
        if r["Type"] == "AWS::S3::Bucket" and "AccessLogs" in n
    )
    for purpose in DATA_BUCKETS:
        props = buckets[purpose]["Properties"]
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", purpose
        assert sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {
            "Fn::GetAtt": [key_id, "Arn"]
        }, purpose
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, purpose
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, purpose
        assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_bucket}
        assert props["LoggingConfiguration"]["LogFilePrefix"] == f"{purpose}/"
        rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
        assert (
            rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"]
            == any_synth.config.stage(any_synth.stage).storage.noncurrent_version_days
        )


def test_access_log_bucket_uses_sse_s3_and_expires_logs(any_synth):
    props = _buckets(any_synth)["access-logs"]["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "LoggingConfiguration" not in props
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 365


def test_every_bucket_denies_plain_http(any_synth):
    policies = any_synth.resources("Storage", "AWS::S3::BucketPolicy")
    assert len(policies) == len(DATA_BUCKETS) + 1
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and s["Principal"] == {"AWS": "*"}
            for s in statements
        )


def test_raw_bucket_sends_eventbridge_events_natively(any_synth):
    buckets = _buckets(any_synth)
    raw = buckets["raw"]["Properties"]
    assert raw["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    for purpose in ("processed", "artifacts", "capture", "monitoring"):
        assert "NotificationConfiguration" not in buckets[purpose]["Properties"]
    # No notifications Lambda just to switch it on.
    assert not any_synth.resources("Storage", "Custom::S3BucketNotifications")


def test_old_captures_and_checkpoints_expire(any_synth):
    buckets = _buckets(any_synth)
    capture = {
        r["Id"]: r for r in buckets["capture"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    assert capture["expire-old-captures"]["ExpirationInDays"] == 90
    artifacts = {
        r["Id"]: r for r in buckets["artifacts"]["Properties"]["LifecycleConfiguration"]["Rules"]
    }
    assert artifacts["expire-spot-checkpoints"]["Prefix"] == "checkpoints/"


def test_dev_data_is_destroyed_with_the_stack(dev):
    for res in {
        **dev.resources("Storage", "AWS::S3::Bucket"),
        **dev.resources("Storage", "AWS::KMS::Key"),
        **dev.resources("Storage", "AWS::SecretsManager::Secret"),
    }.values():
        assert res["DeletionPolicy"] == "Delete"
    # Buckets are emptied first, so deletion succeeds.
    assert len(dev.resources("Storage", "Custom::S3AutoDeleteObjects")) == 6


def test_prod_data_is_retained(prod_vpc):
    for res in {
        **prod_vpc.resources("Storage", "AWS::S3::Bucket"),
        **prod_vpc.resources("Storage", "AWS::KMS::Key"),
        **prod_vpc.resources("Storage", "AWS::SecretsManager::Secret"),
    }.values():
        assert res["DeletionPolicy"] == "Retain"
        assert res["UpdateReplacePolicy"] == "Retain"
    assert not prod_vpc.resources("Storage", "Custom::S3AutoDeleteObjects")
    groups = prod_vpc.resources("Pipeline", "AWS::SageMaker::ModelPackageGroup")
    assert [g["DeletionPolicy"] for g in groups.values()] == ["Retain"]


def test_pii_salt_is_generated_and_encrypted_with_the_key(any_synth):
    (secret,) = any_synth.resources("Storage", "AWS::SecretsManager::Secret").values()
    props = secret["Properties"]
    assert props["Name"] == f"boostline-{any_synth.stage}/pii-salt"
    assert props["KmsKeyId"] == {"Fn::GetAtt": [_key_id(any_synth), "Arn"]}
    assert props["GenerateSecretString"]["PasswordLength"] == 48


def test_bucket_names_are_exported(any_synth):
    outputs = any_synth.template("Storage")["Outputs"]
    exported = {o["Export"]["Name"] for o in outputs.values() if "Export" in o}
    for purpose in (*DATA_BUCKETS, "access-logs"):
        assert f"boostline-{any_synth.stage}-{purpose}-bucket" in exported
