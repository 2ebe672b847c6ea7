#!/usr/bin/env bash
# Proves deploy/check_template.py can fail: the real template must pass, and
# every deliberately broken copy must be rejected.
#
# Usage: bash deploy/test_check_template.sh
#
# The mutations are Python expressions in single quotes; their ${...} are
# CloudFormation Sub syntax, not shell expansions.
# shellcheck disable=SC2016
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template="$here/stockload.yaml"
checker="$here/check_template.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }

# The unmodified template must pass.
cp "$template" "$work/original.yaml"
if python3 "$checker" "$work/original.yaml" >"$work/original.log" 2>&1; then
    ok "original template passes"
else
    bad "original template passes"
    cat "$work/original.log"
fi

# mutate NAME PYTHON-EXPR: the expression rewrites `s` (the template text).
# The mutation must change the file, and the checker must then exit non-zero.
mutate() {
    local name=$1 expr=$2
    local out="$work/$name.yaml"
    python3 - "$template" "$out" "$expr" <<'PY'
import re, sys
src, dst, expr = sys.argv[1], sys.argv[2], sys.argv[3]
s = open(src, encoding="utf-8").read()
new = eval(expr, {"re": re, "s": s})
open(dst, "w", encoding="utf-8").write(new)
PY
    if cmp -s "$template" "$out"; then
        bad "$name: mutation did not change the template (test is stale)"
        return
    fi
    if python3 "$checker" "$out" >"$work/$name.log" 2>&1; then
        bad "$name: checker accepted the broken template"
        sed -n '$p' "$work/$name.log"
    else
        ok "$name: rejected ($(grep -m1 '^FAIL' "$work/$name.log" | cut -c7- | cut -c1-90))"
    fi
}

mutate suffix-done \
    's.replace("Value: .SUCCESS", "Value: .DONE")'
mutate prefix-instead-of-suffix \
    's.replace("- Name: suffix", "- Name: prefix")'
mutate world-open-ssh \
    're.sub(r"(ToPort: 22\n\s+CidrIp: )!Ref OperatorCidr", r"\g<1>0.0.0.0/0", s)'
mutate world-open-postgres-ipv6 \
    're.sub(r"(ToPort: 5432\n\s+)CidrIp: !Ref OperatorCidr", r"\g<1>CidrIpv6: ::/0", s)'
mutate postgres-from-vpc-cidr \
    's.replace("SourceSecurityGroupId: !GetAtt SecurityGroup.GroupId", "CidrIp: 10.0.0.0/8")'
mutate all-ports \
    's.replace("FromPort: 22\n          ToPort: 22", "FromPort: 0\n          ToPort: 65535")'
mutate uncommented-star-on-publish \
    's.replace("Action: sns:Publish\n                Resource: !Ref NotificationTopic", "Action: sns:Publish\n                Resource: \"*\"", 1)'
mutate star-on-pipeline-actions \
    's.replace("Resource: !Sub \"arn:${AWS::Partition}:datapipeline:${AWS::Region}:${AWS::AccountId}:pipeline/*\"", "# wildcard\n                Resource: \"*\"", 1)'
mutate comments-stripped \
    '"".join(l for l in s.splitlines(True) if not l.lstrip().startswith("#"))'
mutate wildcard-action \
    's.replace("- datapipeline:AddTags", "- \"datapipeline:*\"", 1)'
mutate source-bucket-env-wrong \
    's.replace("STOCKLOAD_SOURCE_BUCKET: !Ref SourceBucket", "STOCKLOAD_SOURCE_BUCKET: !Ref MonitoredBucket")'
mutate notify-other-topic \
    's.replace("STOCKLOAD_NOTIFY: !Sub \"sns:${NotificationTopic}\"", "STOCKLOAD_NOTIFY: !Sub \"sns:${OtherTopic}\"")'
mutate subscription-other-topic \
    's.replace("Endpoint: !Ref NotificationEmail2\n      TopicArn: !Ref NotificationTopic", "Endpoint: !Ref NotificationEmail2\n      TopicArn: !Ref OtherTopic")'
mutate secret-not-from-db \
    's.replace("STOCKLOAD_DB_SECRET_ARN: !GetAtt Db.MasterUserSecret.SecretArn", "STOCKLOAD_DB_SECRET_ARN: !Ref DbName")'
mutate env-var-renamed \
    's.replace("STOCKLOAD_COMPANIES_KEY:", "STOCKLOAD_COMPANY_KEY:")'
mutate notification-other-function \
    's.replace("Function: !GetAtt TriggerFunction.Arn", "Function: !Ref LambdaCodeBucket")'
mutate bucket-not-private \
    's.replace("RestrictPublicBuckets: true", "RestrictPublicBuckets: false", 1)'
mutate db-public \
    's.replace("PubliclyAccessible: false", "PubliclyAccessible: true")'
mutate db-snapshot-on-delete \
    's.replace("    DeletionPolicy: Delete\n    UpdateReplacePolicy: Delete\n    Properties:\n      DBInstanceIdentifier", "    DeletionPolicy: Snapshot\n    UpdateReplacePolicy: Snapshot\n    Properties:\n      DBInstanceIdentifier")'

mutate mode-without-auto \
    's.replace("AllowedValues: [pipeline, direct, auto]", "AllowedValues: [pipeline, direct]")'
mutate handoff-to-the-dlq \
    's.replace("!Sub \"sqs:${LoaderQueue}\"", "!Sub \"sqs:${LoaderDeadLetterQueue}\"")'
mutate handoff-env-missing \
    're.sub(r"\n\s+STOCKLOAD_HANDOFF: [^\n]*", "", s)'
mutate auto-lambda-outside-vpc \
    's.replace("LambdaInVpc: !Or [!Condition IsDirect, !Condition IsAuto]", "LambdaInVpc: !Or [!Condition IsDirect, !Condition IsDirect]")'
mutate lambda-may-receive \
    's.replace("Action: sqs:SendMessage\n", "Action:\n                    - sqs:SendMessage\n                    - sqs:ReceiveMessage\n", 1)'
mutate lambda-sends-to-the-dlq \
    's.replace("Action: sqs:SendMessage\n                  Resource: !GetAtt LoaderQueue.Arn", "Action: sqs:SendMessage\n                  Resource: !GetAtt LoaderDeadLetterQueue.Arn")'
mutate loader-may-send \
    's.replace("- sqs:GetQueueAttributes\n", "- sqs:GetQueueAttributes\n                  - sqs:SendMessage\n", 1)'
mutate ec2-loader-consumes-the-dlq \
    's.replace("watch --queue \x27${LoaderQueue}\x27", "watch --queue \x27${LoaderDeadLetterQueue}\x27")'
mutate ecs-loader-other-source \
    's.replace("- --source\n            - !Sub \"s3://${SourceBucket}/Stocks/\"", "- --source\n            - !Sub \"s3://${MonitoredBucket}/\"")'
mutate ecs-loader-public \
    's.replace("AssignPublicIp: DISABLED", "AssignPublicIp: ENABLED")'
mutate queue-without-dlq \
    're.sub(r"\n\s+RedrivePolicy:\n\s+deadLetterTargetArn: [^\n]*\n\s+maxReceiveCount: 3", "", s)'
mutate loader-reads-any-secret \
    's.replace("Action: secretsmanager:GetSecretValue\n                  Resource: !GetAtt Db.MasterUserSecret.SecretArn\n                - !Ref AWS::NoValue", "Action: secretsmanager:GetSecretValue\n                  Resource: !Ref DbName\n                - !Ref AWS::NoValue")'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
