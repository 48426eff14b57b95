#!/usr/bin/env python3
"""Checks rendered relay manifests offline. Called by Deploy/validate.sh; prints one line per
validated document and exits non-zero on any failure.

    validate_manifests.py --k8s-version 1.32.0 --repo . --rules-out DIR NAME=RENDERED.yaml ...

Per document:
  * built-in Kubernetes kinds: strict JSON-schema validation with the kubernetes-validate
    package (unknown fields are errors);
  * monitoring.coreos.com/v1 ServiceMonitor and PrometheusRule (CRDs, not in those schemas): a
    structural check of the fields the Prometheus Operator requires, plus relay-specific checks;
    the groups of a render's PrometheusRules (the relay's, and relay-probe's where the component
    is in) are written together to --rules-out as one file for promtool;
  * any other kind fails (nothing is skipped silently).
Relay-specific checks: every rendered relay ConfigMap carries every variable of base/config.env
and of PROTOCOL.md §8; the relay Deployment's probes, drain timing, security context (of every
container of the pod, sidecars included) and references; the relay-probe Deployment's health
probes, security context and URL reference; each ServiceMonitor matches its Service and scrapes
the path its target serves;
every alert has a summary and a runbook_url whose anchor exists in Runbooks/incident.md; the
recommended labels (app.kubernetes.io/name, instance, component, part-of, managed-by on every
object and pod template, version = the relay image's tag on the relay's and relay-probe's) and
never in a selector; the HPA: every Pods metric is served by a rule of
Deploy/kubernetes/prometheus-adapter/rules.yaml, the socket target is 0.6 x the render's
MAX_ACTIVE_WEBSOCKET_CONNECTIONS, and CPU is a metric too; the Grafana dashboard ConfigMap
(label grafana_dashboard=1): JSON, the datasource and namespace variables, a query in every panel,
each filtered by the namespace variable. The dashboard's queries and the adapter's metricsQuery
(templates filled in) are written to --rules-out as *.promql.yaml recording rules, for
`promtool check rules` to parse. That every metric the rules, dashboard and runbooks name is one a
running relay exports, and every command the runbooks name exists, is checked against the relay
itself by the Swift test target DeployTests (`make test`).
"""
import argparse
import json
import os
import re
import sys

import yaml
import kubernetes_validate

# --- What the relay reads ---------------------------------------------------------------------

SECRET_KEYS = """REDIS_URL NATS_URL NATS_HMAC_SECRET NATS_HMAC_PREVIOUS_SECRET PUBLIC_BASE_URL
ALLOWED_ORIGINS""".split()

CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("monitoring.coreos.com/v1", "PrometheusRule")}
DRAIN_MARGIN_SECONDS = 5
# What each ServiceMonitor scrapes, by the app.kubernetes.io/name its selector matches.
METRICS_PATHS = {"relay": "/metricsz", "relay-probe": "/metrics"}
# Recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/)
# every rendered object and pod template carries; `version` only on the relay build's objects.
RECOMMENDED_LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                      "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"]
VERSION_LABEL = "app.kubernetes.io/version"
RELAY_BUILD_NAMES = {"relay", "relay-probe"}
# Labels that change per environment or release: never in a selector (Deployment and StatefulSet
# selectors are immutable, and a selector on them would lose pods at the next release).
NEVER_IN_SELECTORS = {"app.kubernetes.io/instance", VERSION_LABEL, "app.kubernetes.io/managed-by",
                      "app.kubernetes.io/part-of"}
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# The HPA's socket target as a fraction of MAX_ACTIVE_WEBSOCKET_CONNECTIONS (Runbooks/capacity.md).
HPA_SOCKET_TARGET_FRACTION = 0.6
ADAPTER_RULES = os.path.join("Deploy", "kubernetes", "prometheus-adapter", "rules.yaml")


class Report:
    def __init__(self):
        self.failures = 0
        self.documents = 0

    def ok(self, where, what, how):
        self.documents += 1
        print(f"ok    {where:<20} {what:<52} {how}")

    def fail(self, where, what, why):
        self.failures += 1
        print(f"FAIL  {where:<20} {what:<52} {why}")


def doc_id(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def protocol_table_variables(repo):
    """Variables of the PROTOCOL.md §8 table, when the spec sits beside the repository."""
    path = os.path.join(repo, "..", "shared", "spec", "PROTOCOL.md")
    if not os.path.exists(path):
        return None
    text = open(path, encoding="utf-8").read()
    section = text.split("## 8. Environment variables", 1)[-1].split("\n## 9.", 1)[0]
    names = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", section, re.M))
    node_only = re.search(r"Node-only variables:(.*?)(\n\n|$)", section, re.S)
    if node_only:
        names |= set(re.findall(r"`([A-Z0-9_]+)`", node_only.group(1)))
    return names


def base_config_variables(repo):
    """The variable names Deploy/kubernetes/base/config.env sets."""
    path = os.path.join(repo, "Deploy", "kubernetes", "base", "config.env")
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", open(path, encoding="utf-8").read(), re.M))


def github_anchor(heading):
    slug = heading.strip().lower()
    slug = re.sub(r"[^\w\- ]", "", slug)
    return slug.replace(" ", "-")


def markdown_anchors(path):
    if not os.path.exists(path):
        return set()
    return {github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", open(path, encoding="utf-8").read(), re.M)}


# --- Checks per kind ----------------------------------------------------------------------------

def check_schema(doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


def check_configmap(doc, required):
    data = doc.get("data") or {}
    missing = sorted(set(required) - set(data))
    problems = [f"missing variables: {' '.join(missing)}"] if missing else []
    for key, value in data.items():
        if value != value.strip():
            problems.append(f"{key} has surrounding whitespace (the relay would fall back to the default)")
    return problems


def relay_container(doc):
    for c in doc["spec"]["template"]["spec"].get("containers", []):
        if c.get("name") == "relay":
            return c
    return None


def container_hardening(c, psc):
    """Security-context problems of container `c` in a pod whose securityContext is `psc`."""
    problems = []
    csc = c.get("securityContext") or {}
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        problems.append("runAsNonRoot not set")
    if csc.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem not true")
    if csc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation not false")
    if (csc.get("capabilities") or {}).get("drop") != ["ALL"]:
        problems.append("capabilities must drop ALL")
    if ((csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")) != "RuntimeDefault":
        problems.append("seccompProfile must be RuntimeDefault")
    return problems


def check_relay_deployment(doc, configmaps, drain_ms):
    problems = []
    pod = doc["spec"]["template"]["spec"]
    c = relay_container(doc)
    if c is None:
        return ["no container named relay"]
    probe_paths = {name: (c.get(name) or {}).get("httpGet", {}).get("path")
                   for name in ("readinessProbe", "livenessProbe", "startupProbe")}
    if probe_paths["readinessProbe"] != "/readyz":
        problems.append("readinessProbe must GET /readyz")
    if probe_paths["livenessProbe"] != "/livez":
        problems.append("livenessProbe must GET /livez (never dependency checks)")
    if probe_paths["startupProbe"] is None:
        problems.append("startupProbe missing")
    pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command", [])
    sleep = int(pre_stop[-1]) if pre_stop and pre_stop[0].endswith("sleep") else 0
    if sleep <= 0:
        problems.append("preStop sleep missing")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    needed = drain_ms / 1000 + sleep + DRAIN_MARGIN_SECONDS
    if grace < needed:
        problems.append(f"terminationGracePeriodSeconds {grace} < DRAIN_PERIOD_MS/1000 + preStop + margin = {needed:g}")
    psc = pod.get("securityContext") or {}
    problems += container_hardening(c, psc)
    # Sidecars (components/redis-tls-sidecar) and init containers get the same hardening.
    for other in pod.get("initContainers", []) + [x for x in pod.get("containers", []) if x is not c]:
        problems += [f"container {other.get('name')}: {p}" for p in container_hardening(other, psc)]
    refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
    for ref in refs:
        if ref not in configmaps:
            problems.append(f"envFrom ConfigMap {ref} is not rendered")
    secret_refs = [e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])]
    if secret_refs[-1:] != ["relay-secrets"]:
        problems.append("envFrom must end with secretRef relay-secrets (so the Secret wins)")
    for env in c.get("env", []):
        key = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("key")
        if key and key not in SECRET_KEYS:
            problems.append(f"secretKeyRef {key} is not a key of secret.template.yaml")
    return problems


def probe_container(doc):
    for c in doc["spec"]["template"]["spec"].get("containers", []):
        if c.get("name") == "relay-probe":
            return c
    return None


def check_probe_deployment(doc, configmaps):
    """components/relay-probe: hardened like the relay, /healthz probes, the URL from a ConfigMap."""
    pod = doc["spec"]["template"]["spec"]
    c = probe_container(doc)
    problems = container_hardening(c, pod.get("securityContext") or {})
    for name in ("readinessProbe", "livenessProbe"):
        if (c.get(name) or {}).get("httpGet", {}).get("path") != "/healthz":
            problems.append(f"{name} must GET /healthz")
    if "$(RELAY_PROBE_URL)" not in c.get("args", []):
        problems.append("args must pass $(RELAY_PROBE_URL)")
    refs = [((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name")
            for e in c.get("env", []) if e.get("name") == "RELAY_PROBE_URL"]
    if not refs or refs[0] not in configmaps:
        problems.append("RELAY_PROBE_URL must come from a rendered ConfigMap")
    elif not (configmaps[refs[0]].get("data") or {}).get("RELAY_PROBE_URL", "").startswith("https://"):
        problems.append(f"ConfigMap {refs[0]}: RELAY_PROBE_URL must be https:// (its egress opens 443 only)")
    return problems


def check_servicemonitor(doc, services):
    spec = doc.get("spec") or {}
    problems = []
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    expected_path = METRICS_PATHS.get(selector.get("app.kubernetes.io/name"), "/metricsz")
    endpoints = spec.get("endpoints")
    if not selector:
        problems.append("spec.selector.matchLabels missing")
    if not isinstance(endpoints, list) or not endpoints:
        return problems + ["spec.endpoints must be a non-empty list"]
    matched = [s for s in services
               if all((s["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
    if not matched:
        problems.append("selector matches no rendered Service")
    for ep in endpoints:
        allowed = {"port", "path", "interval", "scrapeTimeout", "relabelings", "scheme"}
        if set(ep) - allowed:
            problems.append(f"unexpected endpoint fields {sorted(set(ep) - allowed)}")
        if ep.get("path") != expected_path:
            problems.append(f"endpoint path must be {expected_path}")
        ports = {p.get("name") for s in matched for p in s["spec"].get("ports", [])}
        if ep.get("port") not in ports:
            problems.append(f"endpoint port {ep.get('port')!r} is not a port of the Service")
        for r in ep.get("relabelings", []):
            if not isinstance(r, dict) or "targetLabel" not in r:
                problems.append("relabeling without targetLabel")
    return problems


def check_prometheusrule(doc, anchors):
    spec = doc.get("spec") or {}
    problems = []
    groups = spec.get("groups")
    if not isinstance(groups, list) or not groups:
        return ["spec.groups must be a non-empty list"], 0
    recorded = {r["record"] for g in groups for r in g.get("rules", []) if "record" in r}
    alerts = 0
    for g in groups:
        if not g.get("name") or not isinstance(g.get("rules"), list):
            problems.append("every group needs a name and a rules list")
            continue
        for r in g["rules"]:
            if ("alert" in r) == ("record" in r):
                problems.append(f"rule in {g['name']} needs exactly one of alert/record")
                continue
            expr = r.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{r.get('alert') or r.get('record')}: expr missing")
                continue
            for name in re.findall(r"\brelay:[a-z0-9_:]+", expr):
                if name not in recorded:
                    problems.append(f"{r.get('alert')}: recording rule {name} not defined")
            if "alert" in r:
                alerts += 1
                ann = r.get("annotations") or {}
                if (r.get("labels") or {}).get("severity") not in ("critical", "warning"):
                    problems.append(f"{r['alert']}: severity label must be critical or warning")
                if not ann.get("summary"):
                    problems.append(f"{r['alert']}: summary annotation missing")
                url = ann.get("runbook_url", "")
                m = re.fullmatch(r"Runbooks/incident\.md#([a-z0-9\-_]+)", url)
                if not m:
                    problems.append(f"{r['alert']}: runbook_url must be Runbooks/incident.md#<anchor>")
                elif m.group(1) not in anchors:
                    problems.append(f"{r['alert']}: Runbooks/incident.md has no section #{m.group(1)}")
    return problems, alerts


def pod_template(doc):
    if doc.get("kind") in ("Deployment", "StatefulSet"):
        return (doc.get("spec") or {}).get("template")
    return None


def relay_image_tag(docs):
    """The tag of the relay container's image in a render (what the version label must say)."""
    for d in docs:
        if d.get("kind") == "Deployment" and relay_container(d) is not None:
            image = relay_container(d).get("image", "").split("@", 1)[0]  # without a digest
            return image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
    return None


def check_labels(doc, tag):
    """Recommended labels on the object and its pod template; none of the per-environment ones in
    a selector or a StatefulSet volumeClaimTemplate (both immutable)."""
    problems = []
    meta_labels = doc["metadata"].get("labels") or {}
    template = pod_template(doc)
    places = [("", meta_labels)]
    if template is not None:
        places.append(("pod template: ", (template.get("metadata") or {}).get("labels") or {}))
    build = meta_labels.get("app.kubernetes.io/name") in RELAY_BUILD_NAMES and doc.get("kind") != "Namespace"
    for where, labels in places:
        missing = [k for k in RECOMMENDED_LABELS if not labels.get(k)]
        if missing:
            problems.append(f"{where}missing labels {missing}")
        if build:
            version = labels.get(VERSION_LABEL)
            if version != tag:
                problems.append(f"{where}{VERSION_LABEL}={version!r}, the relay image's tag is {tag!r} "
                                "(copied by the overlay's `replacements:`; an image pinned by digest cannot be)")
            elif not LABEL_VALUE.match(version) or len(version) > 63:
                problems.append(f"{where}{VERSION_LABEL}={version!r} is not a valid label value (a digest instead of a tag?)")
    spec = doc.get("spec") or {}
    selectors = []
    if doc.get("kind") in ("Deployment", "StatefulSet", "PodDisruptionBudget", "ServiceMonitor"):
        selectors.append((spec.get("selector") or {}).get("matchLabels") or {})
    if doc.get("kind") == "Service":
        selectors.append(spec.get("selector") or {})
    if doc.get("kind") == "NetworkPolicy":
        selectors.append((spec.get("podSelector") or {}).get("matchLabels") or {})
        for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
            for peer in (rule.get("from") or []) + (rule.get("to") or []):
                selectors.append((peer.get("podSelector") or {}).get("matchLabels") or {})
    if template is not None:
        tspec = template.get("spec") or {}
        for c in tspec.get("topologySpreadConstraints") or []:
            selectors.append((c.get("labelSelector") or {}).get("matchLabels") or {})
    for selector in selectors:
        bad = sorted(NEVER_IN_SELECTORS & set(selector))
        if bad:
            problems.append(f"selector uses {bad} (includeSelectors must stay false)")
    for vct in spec.get("volumeClaimTemplates") or []:
        bad = sorted(NEVER_IN_SELECTORS & set((vct.get("metadata") or {}).get("labels") or {}))
        if bad:
            problems.append(f"volumeClaimTemplate {vct['metadata'].get('name')} labelled {bad}: immutable in a "
                            "live StatefulSet (label pod templates through `fields`, not includeTemplates)")
    return problems


def load_adapter_rules(repo):
    """The prometheus-adapter rules (Helm values, `rules.custom`): the metric names they serve and
    their metricsQuery with the templates filled in, or problems."""
    path = os.path.join(repo, ADAPTER_RULES)
    try:
        values = yaml.safe_load(open(path, encoding="utf-8"))
        rules = values["rules"]["custom"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        return {}, [f"cannot read rules.custom: {e!r}"]
    served, problems = {}, []
    for i, rule in enumerate(rules or []):
        series = re.match(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule.get("seriesQuery") or "")
        query = rule.get("metricsQuery") or ""
        overrides = ((rule.get("resources") or {}).get("overrides") or {})
        if not series or not query:
            problems.append(f"rule {i}: seriesQuery (starting with the metric name) and metricsQuery required")
            continue
        if (overrides.get("pod") or {}).get("resource") != "pod" or (overrides.get("namespace") or {}).get("resource") != "namespace":
            problems.append(f"rule {i}: resources.overrides must map the pod and namespace labels")
        name = ((rule.get("name") or {}).get("as")) or series.group(1)
        filled = (query.replace("<<.Series>>", series.group(1))
                  .replace("<<.LabelMatchers>>", 'namespace="relay",pod=~"relay-.*"')
                  .replace("<<.GroupBy>>", "pod"))
        if "<<" in filled:
            problems.append(f"rule {i}: metricsQuery uses a template other than .Series, .LabelMatchers, .GroupBy")
        served[name] = filled
    return served, problems


def check_hpa(doc, relay_configs, adapter_metrics):
    problems = []
    metrics = (doc.get("spec") or {}).get("metrics") or []
    kinds = {(m.get("type"), ((m.get("resource") or {}).get("name"))) for m in metrics}
    if ("Resource", "cpu") not in kinds:
        problems.append("no CPU metric (the one that works without prometheus-adapter)")
    cap = None
    if relay_configs:
        cap = int(relay_configs[0]["data"].get("MAX_ACTIVE_WEBSOCKET_CONNECTIONS", "0"))
    for m in metrics:
        if m.get("type") != "Pods":
            continue
        name = m["pods"]["metric"]["name"]
        if name not in adapter_metrics:
            problems.append(f"Pods metric {name} is served by no rule of {ADAPTER_RULES}")
        if name == "relay_active_websockets" and cap:
            target = m["pods"]["target"].get("averageValue")
            want = round(HPA_SOCKET_TARGET_FRACTION * cap)
            if str(target) != str(want):
                problems.append(f"{name} averageValue {target} != {HPA_SOCKET_TARGET_FRACTION} x "
                                f"MAX_ACTIVE_WEBSOCKET_CONNECTIONS ({cap}) = {want}")
    return problems


def dashboard_panels(panels):
    for p in panels or []:
        yield p
        yield from dashboard_panels(p.get("panels"))


def check_dashboard(doc):
    """Each key of a grafana_dashboard ConfigMap: a dashboard JSON whose every panel queries
    Prometheus through the datasource variable, filtered by the namespace variable. Returns the
    problems, a summary and the queries (for promtool)."""
    problems, queries, summary = [], [], []
    for key, text in (doc.get("data") or {}).items():
        try:
            dash = json.loads(text)
        except ValueError as e:
            problems.append(f"{key}: not JSON: {e}")
            continue
        variables = {v.get("name"): v for v in (dash.get("templating") or {}).get("list", [])}
        if (variables.get("datasource") or {}).get("type") != "datasource":
            problems.append(f"{key}: no `datasource` variable of type datasource")
        if "namespace" not in variables:
            problems.append(f"{key}: no `namespace` variable")
        panels = [p for p in dashboard_panels(dash.get("panels")) if p.get("type") != "row"]
        if not panels:
            problems.append(f"{key}: no panels")
        for p in panels:
            title = p.get("title") or f"panel {p.get('id')}"
            targets = [t for t in p.get("targets") or [] if (t.get("expr") or "").strip()]
            if not targets:
                problems.append(f"{key}: panel {title!r} has no query")
            if (p.get("datasource") or {}).get("uid") != "${datasource}":
                problems.append(f"{key}: panel {title!r} does not use the datasource variable")
            for t in targets:
                if 'namespace="$namespace"' not in t["expr"]:
                    problems.append(f"{key}: panel {title!r} query {t.get('refId')} is not filtered by namespace=\"$namespace\"")
                queries.append((f"{p.get('id')}{t.get('refId', '')}", title, t["expr"]))
        summary.append(f"{key}: {len(panels)} panels, {len(queries)} queries")
    return problems, "; ".join(summary), queries


def write_promql(path, group, queries):
    """Queries as recording rules, only for `promtool check rules` to parse them."""
    rules = [{"record": f"check:{re.sub(r'[^a-zA-Z0-9_]', '_', name)}", "expr": expr} for name, expr in queries]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": group, "rules": rules}]}, f, sort_keys=False)


# --- Driver -----------------------------------------------------------------------------------

def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def validate_render(report, where, docs, args, required_vars, anchors, adapter_metrics, labelled):
    configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    services = [d for d in docs if d.get("kind") == "Service"]
    relay_configs = [cm for name, cm in configmaps.items() if name.startswith("relay-config")]
    tag = relay_image_tag(docs)
    rule_groups = []
    dashboard_queries = []
    for doc in docs:
        what = f"{doc.get('apiVersion')} {doc_id(doc)}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        problems, how = [], ""
        try:
            if key in CRD_KINDS:
                how = "CRD structure"
                if doc["kind"] == "ServiceMonitor":
                    problems = check_servicemonitor(doc, services)
                else:
                    problems, alerts = check_prometheusrule(doc, anchors)
                    how += f", {alerts} alerts, runbook anchors (promtool next)"
                    rule_groups += doc["spec"]["groups"]
            else:
                check_schema(doc, args.k8s_version)
                how = f"schema k8s {args.k8s_version} strict"
                if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].startswith("relay-config"):
                    problems = check_configmap(doc, required_vars)
                    how += f", {len(required_vars)} variables present"
                elif doc.get("kind") == "Deployment" and relay_container(doc) is not None:
                    drain_ms = int(relay_configs[0]["data"].get("DRAIN_PERIOD_MS", "10000")) if relay_configs else 10000
                    problems = check_relay_deployment(doc, configmaps, drain_ms)
                    how += ", probes/drain/securityContext"
                elif doc.get("kind") == "Deployment" and probe_container(doc) is not None:
                    problems = check_probe_deployment(doc, configmaps)
                    how += ", probes/securityContext/URL"
                elif doc.get("kind") == "Secret":
                    missing = sorted(set(SECRET_KEYS) - set(doc.get("stringData") or doc.get("data") or {}))
                    problems = [f"missing keys: {' '.join(missing)}"] if missing else []
                    how += ", relay keys present"
                elif doc.get("kind") == "HorizontalPodAutoscaler":
                    problems = check_hpa(doc, relay_configs, adapter_metrics)
                    how += ", metrics (adapter rule, socket target)"
                elif doc.get("kind") == "ConfigMap" and (doc["metadata"].get("labels") or {}).get("grafana_dashboard") == "1":
                    problems, summary, queries = check_dashboard(doc)
                    dashboard_queries += queries
                    how += f", dashboard ({summary}; promtool next)"
            if labelled:
                problems = problems + check_labels(doc, tag)
                how += ", labels"
        except kubernetes_validate.SchemaNotFoundError as e:
            problems = [f"no schema and no CRD check for this kind ({e})"]
        except kubernetes_validate.ValidationError as e:
            problems = [f"schema: {e.message} at {'.'.join(str(p) for p in e.path)}"]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            problems = [f"malformed document: {e!r}"]
        if problems:
            for p in problems:
                report.fail(where, what, p)
        else:
            report.ok(where, what, how)
    if rule_groups:
        os.makedirs(args.rules_out, exist_ok=True)
        with open(os.path.join(args.rules_out, f"{where}.rules.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump({"groups": rule_groups}, f, sort_keys=False)
    if dashboard_queries:
        # The variables as Grafana fills them in.
        filled = [(name, expr.replace("$namespace", "relay")) for name, _, expr in dashboard_queries]
        write_promql(os.path.join(args.rules_out, f"{where}.dashboard.promql.yaml"), "dashboard", filled)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s-version", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--rules-out", required=True)
    ap.add_argument("renders", nargs="+", help="NAME=FILE")
    args = ap.parse_args()

    report = Report()
    # Every rendered ConfigMap keeps every variable of base/config.env (which the DeployTests hold
    # to the variables the relay reads) and every variable of the PROTOCOL.md §8 table.
    required_vars = base_config_variables(args.repo)
    spec_vars = protocol_table_variables(args.repo)
    if spec_vars is None:
        print("note  PROTOCOL.md not beside the repository: ConfigMap checked against base/config.env only")
    else:
        missing = spec_vars - required_vars
        if missing:
            report.fail("spec", "PROTOCOL.md §8", f"variables missing from base/config.env: {sorted(missing)}")
        required_vars |= spec_vars
    anchors = markdown_anchors(os.path.join(args.repo, "Runbooks", "incident.md"))
    adapter_metrics, problems = load_adapter_rules(args.repo)
    if problems:
        for p in problems:
            report.fail("prometheus-adapter", ADAPTER_RULES, p)
    else:
        report.ok("prometheus-adapter", ADAPTER_RULES, f"serves {sorted(adapter_metrics)} (promtool next)")
        write_promql(os.path.join(args.rules_out, "prometheus-adapter.metricsQuery.promql.yaml"), "prometheus-adapter",
                     sorted(adapter_metrics.items()))

    for item in args.renders:
        where, path = item.split("=", 1)
        # Overlay renders carry the recommended labels; secret.template.yaml is created by hand.
        validate_render(report, where, load(path), args, sorted(required_vars), anchors, adapter_metrics,
                        labelled=(where != "secret-template"))

    print(f"manifest checks: {report.documents} documents ok, {report.failures} problems")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
