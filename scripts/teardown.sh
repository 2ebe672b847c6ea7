#!/usr/bin/env bash
# Delete everything the stockload stack created.
#
# Usage: AWS_REGION=<region> scripts/teardown.sh <stack-name> [--yes]
#
# Without --yes it only prints the plan (read-only AWS calls). With --yes:
#   1. deletes every AWS Data Pipeline named <NamePrefix>-pipeline (the Lambda
#      creates it at run time, so it is not a stack resource) - first, so a
#      running pipeline stops writing to the buckets,
#   2. terminates EC2 instances still running in the stack's security group
#      (pipeline resources; they would block the group's deletion),
#   3. empties both buckets, including old versions and delete markers if
#      versioning was ever enabled (CloudFormation cannot delete a non-empty
#      bucket),
#   4. deletes the stack and waits for DELETE_COMPLETE. The database has
#      DeletionPolicy Delete: no final snapshot is kept.
# Not touched: the bucket holding the Lambda zip (it is not part of the stack).
#
# Needs the AWS CLI v2 and python3 (for JSON handling); plain bash 3.2+.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

stack=""
yes=0
while [ $# -gt 0 ]; do
    case $1 in
        --yes) yes=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option: $1" ;;
        *)
            [ -z "$stack" ] || die "only one stack name, got '$stack' and '$1'"
            stack=$1
            ;;
    esac
    shift
done
[ -n "$stack" ] || { usage >&2; die "missing stack name"; }

region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
[ -n "$region" ] || die "set AWS_REGION (e.g. AWS_REGION=eu-west-1 $0 $stack)"
command -v aws >/dev/null || die "the aws CLI is required"
command -v python3 >/dev/null || die "python3 is required"

aws_() { aws --region "$region" "$@"; }

# text output of a query; "None" (missing value) becomes empty
query_text() {
    local out
    out=$(aws_ "$@" --output text) || return
    [ "$out" != "None" ] || out=""
    printf '%s' "$out"
}

# --- read the stack -------------------------------------------------------------
stack_id=$(query_text cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackId') ||
    die "stack '$stack' not found in $region"
status=$(query_text cloudformation describe-stacks --stack-name "$stack_id" --query 'Stacks[0].StackStatus')
output() {
    query_text cloudformation describe-stacks --stack-name "$stack_id" \
        --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue | [0]"
}
parameter() {
    query_text cloudformation describe-stacks --stack-name "$stack_id" \
        --query "Stacks[0].Parameters[?ParameterKey=='$1'].ParameterValue | [0]"
}

# Outputs are missing if the stack never finished creating; fall back to the
# names the template derives from NamePrefix.
prefix=$(parameter NamePrefix)
source_bucket=$(output SourceBucketName)
monitored_bucket=$(output MonitoredBucketName)
pipeline_name=$(output PipelineName)
security_group=$(output SecurityGroupId)
if [ -n "$prefix" ]; then
    : "${source_bucket:=$prefix-source}"
    : "${monitored_bucket:=$prefix-monitored}"
    : "${pipeline_name:=$prefix-pipeline}"
fi
if [ -z "$security_group" ]; then
    security_group=$(query_text cloudformation describe-stack-resource --stack-name "$stack_id" \
        --logical-resource-id SecurityGroup --query 'StackResourceDetail.PhysicalResourceId' 2>/dev/null || true)
fi

# --- what exists ------------------------------------------------------------------
# Ids never contain spaces, so plain space-separated strings do (and keep
# this working with the bash 3.2 of macOS).
pipeline_ids=""
if [ -n "$pipeline_name" ]; then
    errors=$(mktemp)
    if listing=$(aws_ datapipeline list-pipelines --output json 2>"$errors"); then
        pipeline_ids=$(printf '%s' "$listing" | python3 -c '
import json, sys
name = sys.argv[1]
print(" ".join(p["id"] for p in json.load(sys.stdin).get("pipelineIdList", []) if p.get("name") == name))
' "$pipeline_name")
    else
        warn "could not list Data Pipelines (service unavailable to this account/region?): $(tail -n1 "$errors")"
    fi
    rm -f "$errors"
fi

instance_ids=""
if [ -n "$security_group" ]; then
    instance_ids=$(query_text ec2 describe-instances \
        --filters "Name=instance.group-id,Values=$security_group" \
        "Name=instance-state-name,Values=pending,running,stopping,stopped" \
        --query 'Reservations[].Instances[].InstanceId' 2>/dev/null | tr -s '[:space:]' ' ' || true)
    instance_ids=${instance_ids% }
fi

bucket_exists() { [ -n "$1" ] && aws_ s3api head-bucket --bucket "$1" >/dev/null 2>&1; }

describe_bucket() {
    if bucket_exists "$1"; then echo "s3://$1"; else echo "s3://$1 (does not exist, skipped)"; fi
}

cat <<EOF
Teardown plan for stack $stack ($status) in $region
  1. delete Data Pipeline(s) named '${pipeline_name:-?}': ${pipeline_ids:-none found}
  2. terminate EC2 instances in security group ${security_group:-?}: ${instance_ids:-none}
  3. empty $(describe_bucket "$source_bucket")
     empty $(describe_bucket "$monitored_bucket")
  4. aws cloudformation delete-stack --stack-name $stack, then wait for
     stack-delete-complete (RDS instance deleted without a final snapshot,
     its Secrets Manager secret, Lambda, log group, SNS topic and
     subscriptions, IAM roles and instance profile, security group)
  Not touched: the bucket that holds the Lambda zip.
EOF

if [ "$yes" -ne 1 ]; then
    echo
    echo "Nothing deleted. Re-run with --yes to do the above."
    exit 0
fi

# --- 1. Data Pipelines ----------------------------------------------------------
for id in $pipeline_ids; do
    log "deleting Data Pipeline $id ($pipeline_name)"
    aws_ datapipeline delete-pipeline --pipeline-id "$id"
done

# --- 2. leftover EC2 resources --------------------------------------------------
if [ -n "$instance_ids" ]; then
    log "terminating $instance_ids"
    # shellcheck disable=SC2086 # word splitting of the id list is intended
    aws_ ec2 terminate-instances --instance-ids $instance_ids >/dev/null
    # shellcheck disable=SC2086
    aws_ ec2 wait instance-terminated --instance-ids $instance_ids
fi

# --- 3. empty buckets -----------------------------------------------------------
empty_bucket() {
    local bucket=$1 versioning batch
    if ! bucket_exists "$bucket"; then
        log "s3://$bucket does not exist; nothing to empty"
        return 0
    fi
    log "emptying s3://$bucket"
    aws_ s3 rm "s3://$bucket" --recursive --only-show-errors
    versioning=$(query_text s3api get-bucket-versioning --bucket "$bucket" --query Status)
    if [ "$versioning" = "Enabled" ] || [ "$versioning" = "Suspended" ]; then
        log "s3://$bucket is versioned ($versioning): deleting object versions and delete markers"
        batch=$(mktemp)
        while :; do
            aws_ s3api list-object-versions --bucket "$bucket" --max-items 1000 --output json |
                python3 -c '
import json, sys
raw = sys.stdin.read().strip()
page = json.loads(raw) if raw else {}
objs = [{"Key": o["Key"], "VersionId": o["VersionId"]}
        for kind in ("Versions", "DeleteMarkers") for o in (page.get(kind) or [])][:1000]
print(json.dumps({"Objects": objs, "Quiet": True}) if objs else "")
' >"$batch"
            if [ ! -s "$batch" ] || [ "$(head -c1 "$batch")" != "{" ]; then
                break
            fi
            aws_ s3api delete-objects --bucket "$bucket" --delete "file://$batch" >/dev/null
        done
        rm -f "$batch"
    fi
}
[ -z "$source_bucket" ] || empty_bucket "$source_bucket"
[ -z "$monitored_bucket" ] || empty_bucket "$monitored_bucket"

# --- 4. the stack ---------------------------------------------------------------
log "deleting stack $stack (the RDS instance alone takes several minutes)"
aws_ cloudformation delete-stack --stack-name "$stack_id"
if ! aws_ cloudformation wait stack-delete-complete --stack-name "$stack_id"; then
    warn "stack deletion did not complete; failed resources:"
    aws_ cloudformation describe-stack-events --stack-name "$stack_id" \
        --query "StackEvents[?ResourceStatus=='DELETE_FAILED'].[LogicalResourceId,ResourceStatusReason]" \
        --output text >&2 || true
    die "fix the cause (often a bucket refilled meanwhile) and re-run this script"
fi
log "stack $stack deleted"
