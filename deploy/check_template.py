#!/usr/bin/env python3
"""Wiring checks for deploy/stockload.yaml that cfn-lint does not do.

cfn-lint validates types, properties and IAM action names. It cannot know
that the S3 trigger must fire on ".SUCCESS", that the Lambda's environment
must point at *these* bucket/topic/database resources, that IAM statements
stay scoped, or which ports the security group may open. This script checks
exactly that and exits non-zero when any check fails.

Usage: python3 deploy/check_template.py [deploy/stockload.yaml]

Needs only the standard library and cfn-lint (for its YAML loader, which
understands !Ref/!Sub/!GetAtt and records line numbers).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

try:
    from cfnlint.decode import decode  # (template, matches)
except ImportError:  # pragma: no cover
    sys.exit("check_template.py needs cfn-lint: pip install cfn-lint")

# --------------------------------------------------------------------------
# What the template must contain
# --------------------------------------------------------------------------
EXPECTED_ENV = {
    "STOCKLOAD_MODE",
    "STOCKLOAD_SOURCE_BUCKET",
    "STOCKLOAD_PIPELINE_NAME",
    "STOCKLOAD_DEFINITION_KEY",
    "STOCKLOAD_NOTIFY",
    "STOCKLOAD_NOTIFY_NAME",
    "STOCKLOAD_DB_HOST",
    "STOCKLOAD_DB_PORT",
    "STOCKLOAD_DB_NAME",
    "STOCKLOAD_DB_SECRET_ARN",
    "STOCKLOAD_STOCKS_PREFIX",
    "STOCKLOAD_COMPANIES_KEY",
    "STOCKLOAD_HANDOFF",
    "STOCKLOAD_DIRECT_MAX_BYTES",
}
EXPECTED_OUTPUTS = {
    "SourceBucketName",
    "MonitoredBucketName",
    "TopicArn",
    "DbEndpoint",
    "DbSecretArn",
    "LambdaName",
    "PipelineRoleName",
    "ResourceRoleName",
    "SecurityGroupId",
}

# Actions that may be granted on a wildcard resource, and why. Anything else
# with a wildcard resource fails.
#   "*" (literal): actions with no resource-level permissions at all.
STAR_ALLOWED_EXACT = {
    "datapipeline:createpipeline",  # pipeline does not exist yet
    "datapipeline:listpipelines",  # account-wide list
    "datapipeline:pollfortask",  # Task Runner on the EC2 resource
    "datapipeline:reporttaskrunnerheartbeat",  # Task Runner on the EC2 resource
    "ecr:getauthorizationtoken",  # a registry token, no repository ARN
}
STAR_ALLOWED_PREFIXES = ("ec2:describe",)  # EC2 Describe* never take an ARN
#   "arn:...:ec2:<region>:<account>:*/*": the Lambda guide's form for the
#   ENI actions of a VPC-attached function.
ACCOUNT_WIDE_ALLOWED = {
    "ec2:createnetworkinterface",
    "ec2:deletenetworkinterface",
    "ec2:assignprivateipaddresses",
    "ec2:unassignprivateipaddresses",
}
COMMENT_WINDOW = 3  # a "# " comment within this many lines above the Resource

SECRET_ATTR = "MasterUserSecret.SecretArn"


# --------------------------------------------------------------------------
# Small result collector
# --------------------------------------------------------------------------
class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS  {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name}" + (f": {detail}" if detail else ""))
        return ok


# --------------------------------------------------------------------------
# Helpers for intrinsic functions
# --------------------------------------------------------------------------
SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def line_of(node) -> int | None:
    """1-based line of a decoded node (cfn-lint nodes carry start_mark)."""
    mark = getattr(node, "start_mark", None)
    if mark is not None:
        return mark.line + 1
    if isinstance(node, dict) and len(node) == 1:
        return line_of(next(iter(node.values())))
    return None


def is_ref(value, name: str) -> bool:
    return isinstance(value, dict) and len(value) == 1 and value.get("Ref") == name


def getatt(value) -> tuple[str, str] | None:
    """(logical id, attribute) of a Fn::GetAtt, else None."""
    if not (isinstance(value, dict) and len(value) == 1 and "Fn::GetAtt" in value):
        return None
    arg = value["Fn::GetAtt"]
    if isinstance(arg, str):
        logical, _, attr = arg.partition(".")
        return logical, attr
    if isinstance(arg, list) and len(arg) == 2:
        return str(arg[0]), str(arg[1])
    return None


def sub_text(value) -> str | None:
    """The template string of a Fn::Sub (short or long form), else None."""
    if isinstance(value, dict) and len(value) == 1 and "Fn::Sub" in value:
        arg = value["Fn::Sub"]
        if isinstance(arg, str):
            return arg
        if isinstance(arg, list) and arg and isinstance(arg[0], str):
            return arg[0]
    return None


def referenced_ids(value) -> set[str]:
    """Every logical id/parameter a value refers to (Ref, GetAtt, Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        ga = getatt(value)
        if ga:
            found.add(ga[0])
        text = sub_text(value)
        if text is not None:
            for var in SUB_VAR.findall(text):
                found.add(var.split(".")[0])
        for v in value.values():
            found |= referenced_ids(v)
    elif isinstance(value, list):
        for v in value:
            found |= referenced_ids(v)
    return found


def branches(value):
    """Expand Fn::If into both branches; drop AWS::NoValue."""
    if isinstance(value, dict) and len(value) == 1 and "Fn::If" in value:
        arg = value["Fn::If"]
        if isinstance(arg, list) and len(arg) == 3:
            for b in arg[1:]:
                yield from branches(b)
            return
    if is_ref(value, "AWS::NoValue"):
        return
    yield value


def as_list(value) -> list:
    out = []
    for v in branches(value):
        if isinstance(v, list):
            for item in v:
                out.extend(branches(item))
        else:
            out.append(v)
    return out


def resources_of(tpl, rtype: str) -> dict:
    return {
        k: v
        for k, v in (tpl.get("Resources") or {}).items()
        if isinstance(v, dict) and v.get("Type") == rtype
    }


def props(res) -> dict:
    p = res.get("Properties") if isinstance(res, dict) else None
    return p if isinstance(p, dict) else {}


def depends_on(res) -> set[str]:
    d = res.get("DependsOn", [])
    return {d} if isinstance(d, str) else set(d or [])


# --------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------
def policy_documents(tpl):
    """Yield (where, document, kind) for every policy document in the template."""
    for name, res in (tpl.get("Resources") or {}).items():
        if not isinstance(res, dict):
            continue
        rtype = res.get("Type")
        p = props(res)
        if rtype in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for pol in as_list(p.get("Policies", [])):
                if isinstance(pol, dict):
                    yield f"{name}/{pol.get('PolicyName')}", pol.get("PolicyDocument"), "identity"
        elif rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            yield name, p.get("PolicyDocument"), "identity"
        elif rtype in ("AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy"):
            yield name, p.get("PolicyDocument"), "resource"


def statements(doc):
    for d in branches(doc):
        if isinstance(d, dict):
            for st in as_list(d.get("Statement", [])):
                if isinstance(st, dict):
                    yield st


def broad_kind(resource) -> str | None:
    """'star' for "*", 'account' for an ARN whose resource part is only
    wildcards (arn:...:svc:region:acct:*/*), else None (specific)."""
    text = resource if isinstance(resource, str) else sub_text(resource)
    if text is None:
        return None  # Ref/GetAtt of a concrete resource
    if text.strip() == "*":
        return "star"
    # ${AWS::Partition} etc. contain colons; neutralise substitutions first.
    parts = re.sub(r"\$\{[^}]*\}", "X", text).split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and re.fullmatch(r"[*/]+", parts[5]):
        return "account"
    return None


def has_comment_above(lines: list[str], lineno: int | None) -> bool:
    if lineno is None:
        return False
    same = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    if re.search(r"\s#\s", same):
        return True
    for i in range(max(0, lineno - 1 - COMMENT_WINDOW), lineno - 1):
        if lines[i].lstrip().startswith("# "):
            return True
    return False


def check_iam(tpl, lines: list[str], r: Results) -> None:
    allow_count = 0
    bad_action = []
    bad_shape = []
    bad_resource = []
    uncommented = []
    for where, doc, kind in policy_documents(tpl):
        for st in statements(doc):
            sid = f"{where}/{st.get('Sid', '?')}"
            if st.get("Effect") != "Allow":
                continue
            allow_count += 1
            if "NotAction" in st or "NotResource" in st or "NotPrincipal" in st:
                bad_shape.append(f"{sid} uses NotAction/NotResource/NotPrincipal")
            actions = [a.lower() for a in as_list(st.get("Action", [])) if isinstance(a, str)]
            for a in actions:
                if "*" in a:
                    bad_action.append(f"{sid}: {a}")
            if kind == "resource":
                for pr in as_list((st.get("Principal") or {}).get("AWS", [])) if isinstance(
                    st.get("Principal"), dict
                ) else [st.get("Principal")]:
                    if pr == "*":
                        bad_shape.append(f"{sid} allows Principal *")
            for res in as_list(st.get("Resource", [])):
                kind_ = broad_kind(res)
                if kind_ is None:
                    continue
                if kind_ == "star":
                    bad = [
                        a
                        for a in actions
                        if a not in STAR_ALLOWED_EXACT and not a.startswith(STAR_ALLOWED_PREFIXES)
                    ]
                else:
                    bad = [a for a in actions if a not in ACCOUNT_WIDE_ALLOWED]
                if bad or not actions:
                    bad_resource.append(f"{sid} line {line_of(res)}: {sorted(bad) or 'no actions'} on wildcard")
                if not has_comment_above(lines, line_of(res)):
                    uncommented.append(f"{sid} line {line_of(res)}")
    r.check("IAM: found Allow statements to inspect", allow_count > 0)
    r.check("IAM: no NotAction/NotResource, no Allow for Principal *", not bad_shape, "; ".join(bad_shape))
    r.check("IAM: no wildcard actions in Allow statements", not bad_action, "; ".join(bad_action))
    r.check(
        "IAM: wildcard resources only for allow-listed actions",
        not bad_resource,
        "; ".join(bad_resource),
    )
    r.check(
        f"IAM: every wildcard resource has a '# ' comment within {COMMENT_WINDOW} lines above",
        not uncommented,
        "; ".join(uncommented),
    )
    # Raw text: any Resource "*" line, wherever it is, needs a comment too.
    raw_bad = []
    for i, text in enumerate(lines, start=1):
        if re.match(r"""^\s*(-\s*)?Resource:\s*["']?\*["']?\s*(#.*)?$""", text) or re.match(
            r"""^\s*-\s*["']\*["']\s*$""", text
        ):
            if text.lstrip().startswith("#"):
                continue
            if not has_comment_above(lines, i):
                raw_bad.append(str(i))
    r.check("IAM (raw text): every Resource \"*\" line is commented", not raw_bad, "lines " + ", ".join(raw_bad))


# --------------------------------------------------------------------------
# The individual wiring checks
# --------------------------------------------------------------------------
def check_trigger(tpl, r: Results):
    """S3 notification -> Lambda. Returns (function id, monitored bucket id)."""
    buckets = resources_of(tpl, "AWS::S3::Bucket")
    functions = resources_of(tpl, "AWS::Lambda::Function")
    configs = []
    for bid, b in buckets.items():
        nc = props(b).get("NotificationConfiguration") or {}
        for lc in as_list(nc.get("LambdaConfigurations", [])):
            configs.append((bid, lc))
    if not r.check("S3: exactly one bucket -> Lambda notification", len(configs) == 1, f"found {len(configs)}"):
        return None, None
    bid, lc = configs[0]
    r.check("S3: notification event is s3:ObjectCreated:*", lc.get("Event") == "s3:ObjectCreated:*", str(lc.get("Event")))
    rules = as_list(((lc.get("Filter") or {}).get("S3Key") or {}).get("Rules", []))
    suffixes = [x.get("Value") for x in rules if isinstance(x, dict) and str(x.get("Name", "")).lower() == "suffix"]
    r.check("S3: notification suffix filter is .SUCCESS", suffixes == [".SUCCESS"], f"suffix rules: {suffixes}")
    ga = getatt(lc.get("Function"))
    fid = ga[0] if ga and ga[1] == "Arn" else None
    r.check(
        "S3: notification targets the Lambda function's Arn",
        fid in functions,
        f"Function: {json.dumps(lc.get('Function'), default=str)}",
    )
    if fid not in functions:
        return None, bid

    # Lambda permission for S3, scoped to this bucket and account
    bucket_name = sub_text(props(buckets[bid]).get("BucketName"))
    perms = {
        pid: props(p)
        for pid, p in resources_of(tpl, "AWS::Lambda::Permission").items()
        if fid in referenced_ids(props(p).get("FunctionName"))
    }
    good = []
    for pid, pp in perms.items():
        src = pp.get("SourceArn")
        src_ok = (
            bid in referenced_ids(src)
            or (
                bucket_name is not None
                and sub_text(src) is not None
                and sub_text(src).endswith(":s3:::" + bucket_name)
            )
        )
        if (
            pp.get("Principal") == "s3.amazonaws.com"
            and pp.get("Action") == "lambda:InvokeFunction"
            and src_ok
            and "SourceAccount" in pp
        ):
            good.append(pid)
    r.check(
        "Lambda permission: s3.amazonaws.com may invoke it, SourceArn = monitored bucket, SourceAccount set",
        len(good) >= 1,
        f"candidates: {sorted(perms)}",
    )
    r.check(
        "S3: monitored bucket DependsOn the Lambda permission",
        bool(set(good) & depends_on(buckets[bid])),
        f"DependsOn={sorted(depends_on(buckets[bid]))}",
    )
    return fid, bid


def check_lambda(tpl, fid: str, monitored: str | None, r: Results) -> dict:
    res = tpl["Resources"][fid]
    p = props(res)
    env = ((p.get("Environment") or {}).get("Variables")) or {}
    names = set(env)
    r.check(
        "Lambda: environment has exactly the STOCKLOAD_* names the code reads",
        names == EXPECTED_ENV,
        f"missing {sorted(EXPECTED_ENV - names)}, unexpected {sorted(names - EXPECTED_ENV)}",
    )
    r.check("Lambda: Runtime provided.al2023", p.get("Runtime") == "provided.al2023", str(p.get("Runtime")))
    r.check("Lambda: Handler bootstrap", p.get("Handler") == "bootstrap", str(p.get("Handler")))
    r.check("Lambda: Architectures [x86_64]", as_list(p.get("Architectures")) == ["x86_64"], str(p.get("Architectures")))
    r.check("Lambda: Timeout 900, MemorySize 512", p.get("Timeout") == 900 and p.get("MemorySize") == 512)

    # SOURCE_BUCKET -> a bucket resource that is not the monitored one
    buckets = resources_of(tpl, "AWS::S3::Bucket")
    src = env.get("STOCKLOAD_SOURCE_BUCKET")
    src_id = src.get("Ref") if isinstance(src, dict) else None
    r.check(
        "Lambda env: STOCKLOAD_SOURCE_BUCKET is !Ref SourceBucket",
        src_id == "SourceBucket" and src_id in buckets and src_id != monitored,
        f"value {json.dumps(src, default=str)}",
    )

    # NOTIFY -> "sns:" + the topic that the subscriptions use
    notify = env.get("STOCKLOAD_NOTIFY")
    topic_id = None
    text = sub_text(notify)
    if text is not None:
        m = re.fullmatch(r"sns:\$\{([A-Za-z0-9]+)\}", text)
        topic_id = m.group(1) if m else None
    elif isinstance(notify, dict) and "Fn::Join" in notify:
        sep, parts = notify["Fn::Join"]
        if sep == "" and len(parts) == 2 and parts[0] == "sns:" and isinstance(parts[1], dict):
            topic_id = parts[1].get("Ref")
    topics = resources_of(tpl, "AWS::SNS::Topic")
    subs = resources_of(tpl, "AWS::SNS::Subscription")
    r.check("Lambda env: STOCKLOAD_NOTIFY is sns:<topic>", topic_id in topics, f"value {json.dumps(notify, default=str)}")
    sub_topics = {sid: props(s).get("TopicArn") for sid, s in subs.items()}
    r.check(
        "SNS: every subscription uses the topic STOCKLOAD_NOTIFY names",
        bool(subs) and all(is_ref(t, topic_id) for t in sub_topics.values()),
        f"subscriptions -> {json.dumps(sub_topics, default=str)}",
    )
    r.check(
        "SNS: an email subscription for NotificationEmail",
        any(
            props(s).get("Protocol") == "email" and is_ref(props(s).get("Endpoint"), "NotificationEmail")
            for s in subs.values()
        ),
    )

    # DB secret / host / port -> the RDS instance with a managed password
    dbs = resources_of(tpl, "AWS::RDS::DBInstance")
    sec = getatt(env.get("STOCKLOAD_DB_SECRET_ARN"))
    db_id = sec[0] if sec and sec[1] == SECRET_ATTR else None
    r.check(
        "Lambda env: STOCKLOAD_DB_SECRET_ARN is the Db instance's MasterUserSecret.SecretArn",
        db_id in dbs and props(dbs[db_id]).get("ManageMasterUserPassword") is True,
        f"value {json.dumps(env.get('STOCKLOAD_DB_SECRET_ARN'), default=str)}",
    )
    r.check(
        "Lambda env: DB_HOST/DB_PORT come from the same Db instance",
        getatt(env.get("STOCKLOAD_DB_HOST")) == (db_id, "Endpoint.Address")
        and getatt(env.get("STOCKLOAD_DB_PORT")) == (db_id, "Endpoint.Port"),
    )
    r.check("Lambda env: STOCKLOAD_DB_NAME is !Ref DbName", is_ref(env.get("STOCKLOAD_DB_NAME"), "DbName"))
    mode_param = (tpl.get("Parameters") or {}).get("TriggerMode") or {}
    r.check(
        "Lambda env: STOCKLOAD_MODE is !Ref TriggerMode (pipeline|direct|auto)",
        is_ref(env.get("STOCKLOAD_MODE"), "TriggerMode")
        and set(mode_param.get("AllowedValues", [])) == {"pipeline", "direct", "auto"},
    )
    consts = {
        "STOCKLOAD_DEFINITION_KEY": "pipeline_definition.json",
        "STOCKLOAD_STOCKS_PREFIX": "Stocks/",
        "STOCKLOAD_COMPANIES_KEY": "CompanyNames/top_companies.txt",
    }
    r.check(
        "Lambda env: fixed keys (definition, Stocks/, companies file)",
        all(env.get(k) == v for k, v in consts.items()),
        str({k: env.get(k) for k in consts}),
    )
    r.check(
        "Lambda env: PIPELINE_NAME ${NamePrefix}-pipeline, NOTIFY_NAME ${FirstName}_${Surname}",
        sub_text(env.get("STOCKLOAD_PIPELINE_NAME")) == "${NamePrefix}-pipeline"
        and sub_text(env.get("STOCKLOAD_NOTIFY_NAME")) == "${FirstName}_${Surname}",
    )
    return {
        "topic": topic_id,
        "db": db_id,
        "role": (getatt(p.get("Role")) or (None,))[0],
        "function": fid,
    }


def check_role_targets(tpl, wiring: dict, r: Results) -> None:
    """sns:Publish / GetSecretValue in the Lambda role point at the same topic/secret."""
    role = (tpl.get("Resources") or {}).get(wiring.get("role") or "")
    if not r.check("Lambda: Role is GetAtt of a role in this template", isinstance(role, dict)):
        return
    publish_ok, secret_ok = [], []
    for pol in as_list(props(role).get("Policies", [])):
        for st in statements(pol.get("PolicyDocument")):
            acts = {a.lower() for a in as_list(st.get("Action", [])) if isinstance(a, str)}
            targets = as_list(st.get("Resource", []))
            if "sns:publish" in acts:
                publish_ok.append(all(is_ref(t, wiring["topic"]) for t in targets))
            if "secretsmanager:getsecretvalue" in acts:
                secret_ok.append(all(getatt(t) == (wiring["db"], SECRET_ATTR) for t in targets))
    r.check("Lambda role: sns:Publish only on the notification topic", publish_ok and all(publish_ok))
    r.check("Lambda role: secretsmanager:GetSecretValue only on the Db secret", secret_ok and all(secret_ok))


def check_buckets(tpl, r: Results) -> None:
    buckets = resources_of(tpl, "AWS::S3::Bucket")
    for name in ("SourceBucket", "MonitoredBucket"):
        b = props(buckets.get(name, {}))
        pab = b.get("PublicAccessBlockConfiguration") or {}
        keys = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
        r.check(f"S3: {name} blocks all public access", all(pab.get(k) is True for k in keys))
        r.check(f"S3: {name} has default encryption", bool(b.get("BucketEncryption")))
    for pid, pol in resources_of(tpl, "AWS::S3::BucketPolicy").items():
        r.check(f"S3: bucket policy {pid} is conditional (reviewer access only when asked)", "Condition" in pol)


def sg_matches(value, sg_id: str) -> bool:
    ga = getatt(value)
    return is_ref(value, sg_id) or (ga is not None and ga[0] == sg_id and ga[1] == "GroupId")


def check_security_group(tpl, raw: str, r: Results) -> None:
    sgs = resources_of(tpl, "AWS::EC2::SecurityGroup")
    if not r.check("SG: exactly one security group", len(sgs) == 1, f"found {sorted(sgs)}"):
        return
    sg_id = next(iter(sgs))
    rules = [("inline", x) for x in as_list(props(sgs[sg_id]).get("SecurityGroupIngress", []))]
    for iid, ing in resources_of(tpl, "AWS::EC2::SecurityGroupIngress").items():
        pi = props(ing)
        if sg_matches(pi.get("GroupId"), sg_id):
            rules.append((iid, pi))
    problems = []
    seen = set()
    for where, rule in rules:
        if not isinstance(rule, dict):
            problems.append(f"{where}: unreadable rule")
            continue
        proto = str(rule.get("IpProtocol"))
        lo, hi = rule.get("FromPort"), rule.get("ToPort")
        sources = [k for k in ("CidrIp", "CidrIpv6", "SourceSecurityGroupId", "SourceSecurityGroupName", "SourcePrefixListId") if k in rule]
        if proto not in ("tcp", "6") or lo != hi or lo not in (22, 5432) or len(sources) != 1:
            problems.append(f"{where}: {proto} {lo}-{hi} from {sources}")
            continue
        src_key = sources[0]
        src = rule[src_key]
        if src_key == "CidrIp" and is_ref(src, "OperatorCidr"):
            seen.add((lo, "operator"))
        elif lo == 5432 and src_key == "SourceSecurityGroupId" and sg_matches(src, sg_id):
            seen.add((lo, "self"))
        else:
            problems.append(f"{where}: port {lo} open to {src_key}={json.dumps(src, default=str)}")
    r.check("SG: only 5432 (self, OperatorCidr) and 22 (OperatorCidr) are open", not problems, "; ".join(problems))
    need = {(5432, "self"), (5432, "operator"), (22, "operator")}
    r.check("SG: 5432 from itself and OperatorCidr, 22 from OperatorCidr are all present", need <= seen, f"have {sorted(seen)}")
    code_lines = [ln for ln in raw.splitlines() if not ln.lstrip().startswith("#")]
    world = [ln.strip() for ln in code_lines if "0.0.0.0/0" in ln or "::/0" in ln]
    r.check("SG: nothing opened to 0.0.0.0/0 or ::/0 anywhere in the template", not world, "; ".join(world))
    pattern = ((tpl.get("Parameters") or {}).get("OperatorCidr") or {}).get("AllowedPattern", "")
    r.check("SG: OperatorCidr parameter only accepts a /32", pattern.endswith("/32$"), pattern)
    dbs = resources_of(tpl, "AWS::RDS::DBInstance")
    for did, db in dbs.items():
        dp = props(db)
        r.check(
            f"RDS: {did} uses the security group, is private, encrypted",
            any(sg_matches(v, sg_id) for v in as_list(dp.get("VPCSecurityGroups", [])))
            and dp.get("PubliclyAccessible") is False
            and dp.get("StorageEncrypted") is True,
        )
        r.check(
            f"RDS: {did} DeletionPolicy/UpdateReplacePolicy Delete (teardown removes it)",
            db.get("DeletionPolicy") == "Delete" and db.get("UpdateReplacePolicy") == "Delete",
        )


# --------------------------------------------------------------------------
# Auto mode: the hand-off queue, the Lambda's and the loader's access to it,
# and where `stockload watch --queue` runs
# --------------------------------------------------------------------------
def condition_holds(tpl, value, params: dict) -> bool:
    """Evaluates a condition (Fn::Equals/And/Or/Not, Condition, Ref of a
    parameter) for the given parameter values (defaults for the rest)."""
    if isinstance(value, dict) and len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Condition":
            return condition_holds(tpl, (tpl.get("Conditions") or {}).get(arg), params)
        if fn == "Fn::Equals":
            a, b = (resolve_param(tpl, x, params) for x in arg)
            return a == b
        if fn == "Fn::And":
            return all(condition_holds(tpl, x, params) for x in arg)
        if fn == "Fn::Or":
            return any(condition_holds(tpl, x, params) for x in arg)
        if fn == "Fn::Not":
            return not condition_holds(tpl, arg[0], params)
    raise ValueError(f"cannot evaluate condition {value!r}")


def resolve_param(tpl, value, params: dict):
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name in params:
            return params[name]
        return ((tpl.get("Parameters") or {}).get(name) or {}).get("Default")
    return value


def present(tpl, logical: str, params: dict) -> bool:
    """Whether a resource exists for these parameter values."""
    res = (tpl.get("Resources") or {}).get(logical)
    if not isinstance(res, dict):
        return False
    cond = res.get("Condition")
    return cond is None or condition_holds(tpl, {"Condition": cond}, params)


def if_branch(tpl, value, params: dict):
    """The branch of a Fn::If taken for these parameter values (value itself
    when it is not a Fn::If)."""
    if isinstance(value, dict) and len(value) == 1 and "Fn::If" in value:
        cond, yes, no = value["Fn::If"]
        return yes if condition_holds(tpl, {"Condition": cond}, params) else no
    return value


def sqs_grants(tpl, role_id: str, params: dict) -> list[tuple[set[str], list]]:
    """(sqs actions, resources) of every statement in a role's inline policies
    that exist for these parameter values."""
    role = (tpl.get("Resources") or {}).get(role_id) or {}
    found = []
    for pol in props(role).get("Policies", []):
        pol = if_branch(tpl, pol, params)
        if not isinstance(pol, dict):
            continue
        for st in (pol.get("PolicyDocument") or {}).get("Statement", []):
            st = if_branch(tpl, st, params)
            if not isinstance(st, dict):
                continue
            acts = {a.lower() for a in as_list(st.get("Action", [])) if isinstance(a, str)}
            sqs = {a for a in acts if a.startswith("sqs:")}
            if sqs:
                found.append((sqs, as_list(st.get("Resource", []))))
    return found


def grants_only_on(grants, actions: set[str], queue: str) -> bool:
    """Exactly these sqs actions, each only on GetAtt queue.Arn."""
    granted = set().union(*(a for a, _ in grants)) if grants else set()
    on_queue = all(all(getatt(t) == (queue, "Arn") for t in targets) for _, targets in grants)
    return granted == actions and on_queue


def role_statements(tpl, role_id: str, params: dict):
    role = (tpl.get("Resources") or {}).get(role_id) or {}
    for pol in props(role).get("Policies", []):
        pol = if_branch(tpl, pol, params)
        if isinstance(pol, dict):
            for st in (pol.get("PolicyDocument") or {}).get("Statement", []):
                st = if_branch(tpl, st, params)
                if isinstance(st, dict):
                    yield st


LOADER_SQS = {"sqs:receivemessage", "sqs:deletemessage", "sqs:changemessagevisibility", "sqs:getqueueattributes"}


def check_auto(tpl, wiring: dict, r: Results) -> None:
    auto = {"TriggerMode": "auto", "HandoffTo": "queue"}
    fn = props(tpl["Resources"][wiring["function"]])
    env = ((fn.get("Environment") or {}).get("Variables")) or {}
    queues = resources_of(tpl, "AWS::SQS::Queue")
    handoff = if_branch(tpl, env.get("STOCKLOAD_HANDOFF"), auto)
    m = re.fullmatch(r"sqs:\$\{([A-Za-z0-9]+)\}", sub_text(handoff) or "")
    queue = m.group(1) if m else None
    r.check(
        "Auto: STOCKLOAD_HANDOFF is sqs:<the loader queue> in auto mode with HandoffTo=queue",
        queue in queues and present(tpl, queue, auto),
        f"value {json.dumps(env.get('STOCKLOAD_HANDOFF'), default=str)}",
    )
    r.check(
        "Auto: STOCKLOAD_HANDOFF is pipeline with HandoffTo=pipeline",
        if_branch(tpl, env.get("STOCKLOAD_HANDOFF"), {"TriggerMode": "auto", "HandoffTo": "pipeline"}) == "pipeline",
    )
    param = (tpl.get("Parameters") or {}).get("DirectMaxBytes") or {}
    r.check(
        "Auto: STOCKLOAD_DIRECT_MAX_BYTES is !Ref DirectMaxBytes (digits or empty)",
        is_ref(env.get("STOCKLOAD_DIRECT_MAX_BYTES"), "DirectMaxBytes")
        and param.get("AllowedPattern") == "^$|^[0-9]+$"
        and param.get("Default") == "",
    )
    if queue not in queues:
        return
    qp = props(queues[queue])
    dlq = getatt((qp.get("RedrivePolicy") or {}).get("deadLetterTargetArn"))
    r.check(
        "Auto: the loader queue has a dead-letter queue of its own and is encrypted",
        dlq is not None and dlq[0] in queues and dlq[0] != queue and qp.get("SqsManagedSseEnabled") is True,
    )
    vpc = fn.get("VpcConfig")
    r.check(
        "Auto: the Lambda runs in the VPC (it may load here) in direct and auto mode, not in pipeline mode",
        if_branch(tpl, vpc, auto) is not None
        and not is_ref(if_branch(tpl, vpc, auto), "AWS::NoValue")
        and is_ref(if_branch(tpl, vpc, {"TriggerMode": "pipeline"}), "AWS::NoValue"),
    )
    r.check(
        "Auto: the Lambda role may only sqs:SendMessage, only to the loader queue",
        grants_only_on(sqs_grants(tpl, wiring["role"], auto), {"sqs:sendmessage"}, queue),
        str(sqs_grants(tpl, wiring["role"], auto)),
    )
    r.check(
        "Auto: the Lambda role has no queue access outside auto mode with a queue",
        not sqs_grants(tpl, wiring["role"], {"TriggerMode": "direct"})
        and not sqs_grants(tpl, wiring["role"], {"TriggerMode": "auto", "HandoffTo": "pipeline"}),
    )
    for place in ("ec2", "ecs"):
        check_loader(tpl, wiring, queue, dict(auto, LoaderPlace=place), r)


def check_loader(tpl, wiring: dict, queue: str, params: dict, r: Results) -> None:
    """The consumer of `queue` for LoaderPlace=params['LoaderPlace']: it runs
    `stockload watch --queue <queue>` on the Lambda's batch, in the security
    group, with a role that may consume that queue and little else."""
    place = params["LoaderPlace"]
    here = f"Auto ({place}):"
    source = ("s3://${SourceBucket}/Stocks/", "s3://${SourceBucket}/CompanyNames/top_companies.txt")
    role_id, command_ok, sg_ok = None, False, False
    if place == "ec2":
        found = [k for k in resources_of(tpl, "AWS::EC2::Instance") if present(tpl, k, params)]
        inst = props(tpl["Resources"][found[0]]) if len(found) == 1 else {}
        user_data = sub_text((inst.get("UserData") or {}).get("Fn::Base64")) or ""
        command_ok = (
            f"stockload watch --queue '${{{queue}}}' --source '{source[0]}' --companies '{source[1]}'" in user_data
        )
        sg_ok = any(sg_matches(v, "SecurityGroup") for v in as_list(inst.get("SecurityGroupIds", [])))
        profile = (tpl.get("Resources") or {}).get((inst.get("IamInstanceProfile") or {}).get("Ref", ""), {})
        roles = [x.get("Ref") for x in as_list(props(profile).get("Roles", [])) if isinstance(x, dict)]
        role_id = roles[0] if len(roles) == 1 else None
        r.check(f"{here} exactly one loader instance, only with LoaderPlace=ec2", len(found) == 1, str(found))
    else:
        found = [k for k in resources_of(tpl, "AWS::ECS::Service") if present(tpl, k, params)]
        svc = props(tpl["Resources"][found[0]]) if len(found) == 1 else {}
        task = props((tpl.get("Resources") or {}).get((svc.get("TaskDefinition") or {}).get("Ref", ""), {}))
        containers = as_list(task.get("ContainerDefinitions", []))
        cmd = as_list(containers[0].get("Command", [])) if len(containers) == 1 else []
        command_ok = (
            len(cmd) == 7
            and cmd[:2] == ["watch", "--queue"]
            and is_ref(cmd[2], queue)
            and cmd[3] == "--source"
            and sub_text(cmd[4]) == source[0]
            and cmd[5] == "--companies"
            and sub_text(cmd[6]) == source[1]
        )
        vpc = (svc.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {}
        sg_ok = any(sg_matches(v, "SecurityGroup") for v in as_list(vpc.get("SecurityGroups", [])))
        sg_ok = sg_ok and vpc.get("AssignPublicIp") == "DISABLED" and svc.get("DesiredCount") == 1
        role_id = (getatt(task.get("TaskRoleArn")) or (None,))[0]
        r.check(f"{here} exactly one loader service, only with LoaderPlace=ecs", len(found) == 1, str(found))
    r.check(
        f"{here} runs `stockload watch --queue <loader queue>` on the Lambda's batch (Stocks/, CompanyNames/)",
        command_ok,
    )
    where = "in the security group (reaches the database)" + (", no public address" if place == "ecs" else "")
    r.check(f"{here} {where}", sg_ok)
    if not r.check(f"{here} has a role of this template", role_id in (tpl.get("Resources") or {})):
        return
    r.check(
        f"{here} the loader role may only receive, delete, extend and describe, only on the loader queue",
        grants_only_on(sqs_grants(tpl, role_id, params), LOADER_SQS, queue),
        str(sqs_grants(tpl, role_id, params)),
    )
    publish, secret = [], []
    for st in role_statements(tpl, role_id, params):
        acts = {a.lower() for a in as_list(st.get("Action", [])) if isinstance(a, str)}
        targets = as_list(st.get("Resource", []))
        if "sns:publish" in acts:
            publish.append(all(is_ref(t, wiring["topic"]) for t in targets))
        if "secretsmanager:getsecretvalue" in acts:
            secret.append(all(getatt(t) == (wiring["db"], SECRET_ATTR) for t in targets))
    r.check(f"{here} the loader role publishes only to the notification topic", publish and all(publish))
    r.check(f"{here} the loader role reads no secret but the Db's", all(secret))
    none = [k for k in resources_of(tpl, "AWS::ECS::Service") if present(tpl, k, {"TriggerMode": "direct"})]
    none += [k for k in resources_of(tpl, "AWS::EC2::Instance") if present(tpl, k, {"TriggerMode": "direct"})]
    r.check(f"{here} no loader instance or service outside auto mode", not none, str(none))


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else Path(__file__).with_name("stockload.yaml"))
    r = Results()
    tpl, matches = decode(str(path))
    if not r.check(f"template {path} decodes", tpl is not None and not matches, "; ".join(str(m) for m in matches)):
        print(f"{r.passed} passed, {r.failed} failed")
        return 1
    raw = path.read_text(encoding="utf-8")
    lines = raw.splitlines()

    fid, monitored = check_trigger(tpl, r)
    if fid:
        wiring = check_lambda(tpl, fid, monitored, r)
        check_role_targets(tpl, wiring, r)
        check_auto(tpl, wiring, r)
    check_buckets(tpl, r)
    check_iam(tpl, lines, r)
    check_security_group(tpl, raw, r)
    outputs = set(tpl.get("Outputs") or {})
    r.check("Outputs: all required outputs present", EXPECTED_OUTPUTS <= outputs, f"missing {sorted(EXPECTED_OUTPUTS - outputs)}")

    print(f"{r.passed} passed, {r.failed} failed")
    return 0 if r.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
