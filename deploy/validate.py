"""Static checks of livegate's deployment files; run by scripts/validate-deploy.sh.

No Docker engine, cluster, Prometheus or Grafana runs here: every file is checked against the
schemas and tools that define it (compose-spec, Kubernetes OpenAPI, the ServiceMonitor CRD,
promtool) and against the gateway itself (README defaults, metric names registered in the
crates). Prints one line per check; exits 1 naming every failure.

    target/deploy-validate/venv/bin/python deploy/validate.py \
        --promtool PATH --compose "docker compose" --kubectl kubectl
"""

import argparse
import copy
import fnmatch
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema
import kubernetes_validate
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Kubernetes versions the manifests must be valid for: an old supported one and the newest
# the kubernetes-validate package knows.
KUBERNETES_VERSIONS = ["1.28.0", "1.37.0"]
failures = []


class CheckFailed(Exception):
    pass


def check(name):
    """Runs the decorated check at once, printing `ok` or `FAIL` with the reason."""

    def run(fn):
        try:
            detail = fn()
            print(f"  ok    {name}{': ' + detail if detail else ''}")
        except CheckFailed as e:
            failures.append(f"{name}: {e}")
            print(f"  FAIL  {name}: {e}")
        except Exception as e:  # a crash in a check is a failure of that check, not the run
            failures.append(f"{name}: {type(e).__name__}: {e}")
            print(f"  FAIL  {name}: {type(e).__name__}: {e}")
        return fn

    return run


def need(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def path(*parts):
    return os.path.join(ROOT, *parts)


def read(rel):
    with open(path(rel), encoding="utf-8") as f:
        return f.read()


def load_yaml(rel):
    return yaml.safe_load(read(rel))


def port_of(addr):
    """`0.0.0.0:8935` -> 8935."""
    m = re.fullmatch(r"(?:\[[^\]]*\]|[^:]*):(\d+)", str(addr))
    need(m, f"{addr!r} is not host:port")
    return int(m.group(1))


def seconds(duration):
    """`10s`, `1m30s`, `500ms` (the gateway's duration syntax) -> seconds."""
    total, rest = 0.0, str(duration)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", rest):
        total += float(num) * units[unit]
    need(re.fullmatch(r"((\d+(\.\d+)?)(ms|s|m|h))+", rest), f"{duration!r} is not a duration")
    return total


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, **kw)


# ---------------------------------------------------------------------------------------------
# What the gateway is: README's configuration table and the metrics the crates register.


def readme_settings():
    """{variable: default} from README's configuration table."""
    settings = {}
    for line in read("README.md").splitlines():
        m = re.match(r"\|\s*`(LIVE_AI_[A-Z_]+)`\s*\|\s*`--[a-z-]+`\s*\|\s*([^|]*)\|", line)
        if m:
            default = m.group(2).strip()
            settings[m.group(1)] = default.strip("`") if default.startswith("`") else ""
    need(settings, "README.md has no configuration table rows (| `LIVE_AI_...` | `--...` | ...)")
    return settings


SETTINGS = {}
PORTS = {}


@check("README: configuration defaults")
def _():
    SETTINGS.update(readme_settings())
    for role, var, proto in [("http", "LIVE_AI_HTTP_ADDR", "tcp"), ("whip", "LIVE_AI_WHIP_ADDR", "udp"),
                             ("whep", "LIVE_AI_WHEP_ADDR", "udp")]:
        need(var in SETTINGS, f"README's table lacks {var}")
        PORTS[role] = (port_of(SETTINGS[var]), proto)
    need("LIVE_AI_SHUTDOWN_TIMEOUT" in SETTINGS, "README's table lacks LIVE_AI_SHUTDOWN_TIMEOUT")
    return (f"{len(SETTINGS)} variables; HTTP {PORTS['http'][0]}/tcp, WHIP {PORTS['whip'][0]}/udp, "
            f"WHEP {PORTS['whep'][0]}/udp")


def expected_ports():
    return {f"{p}/{proto}" for p, proto in PORTS.values()}


METRICS = {}  # name -> type ("histogram" or "other")
LABELS = {}  # name -> label names
CONSTRUCTOR = re.compile(r"(\w+)(?:::\w+)?\(\s*\"((?:livegate|process)_[a-z0-9_]+)\"")
# Labels every scraped series may carry: Prometheus's target labels, the Kubernetes scrape
# job's `node`, and what the Prometheus Operator adds.
TARGET_LABELS = {"instance", "job", "node", "namespace", "pod", "service", "endpoint", "container"}


def label_names(array):
    return set(re.findall(r'"(\w+)"', array))


def registered_metrics(text):
    """(name, type, labels) of each metric constructed in a Rust source: the labels are the
    `&[...]` of the constructor call, or of the helper (`fn quantiles`, `let by_kind = |..|`)
    the call goes through, plus `const_label`s."""
    for m in CONSTRUCTOR.finditer(text):
        ctor, name = m.groups()
        call = text[m.end():]
        call = call[:call.find(")?")] if ")?" in call else call
        labels = set()
        array = re.search(r"&\[([^\]]*)\]", call)
        if array:
            labels = label_names(array.group(1))
        elif ctor[0].islower():
            helper = re.search(rf"(?:fn {ctor}\b|let {ctor}\s*=)[^;]*?&\[([^\]]*)\]", text, re.S)
            if helper:
                labels = label_names(helper.group(1))
        labels |= set(re.findall(r'const_label\(\s*"(\w+)"', call))
        yield name, "histogram" if ctor.startswith("Histogram") else "other", labels


def prometheus_crate_source():
    version = None
    lock = read("Cargo.lock")
    m = re.search(r'name = "prometheus"\nversion = "([^"]+)"', lock)
    need(m, "Cargo.lock has no prometheus package")
    version = m.group(1)
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    pattern = os.path.join(home, "registry", "src", "*", f"prometheus-{version}", "src",
                           "process_collector.rs")
    found = glob.glob(pattern)
    if not found:
        run(["cargo", "fetch", "--locked"])
        found = glob.glob(pattern)
    need(found, f"prometheus {version}'s source is not in the cargo registry ({pattern})")
    return found[0]


@check("crates: metrics the gateway registers")
def _():
    sources = glob.glob(path("crates", "*", "src", "**", "*.rs"), recursive=True)
    for src in sources:
        with open(src, encoding="utf-8") as f:
            for name, kind, labels in registered_metrics(f.read()):
                METRICS[name] = kind
                LABELS[name] = labels
    need(len(METRICS) > 10, f"only {len(METRICS)} livegate_* metrics found in crates/*/src")
    process = 0
    if any("ProcessCollector" in open(s, encoding="utf-8").read() for s in sources):
        with open(prometheus_crate_source(), encoding="utf-8") as f:
            for name, kind, labels in registered_metrics(f.read()):
                METRICS[name] = kind
                LABELS[name] = labels
                process += 1
        need(process, "the process collector's metric names were not found in its source")
    hist = sum(1 for k in METRICS.values() if k == "histogram")
    return f"{len(METRICS) - process} livegate_* ({hist} histograms) and {process} process_* names"


def exported_series():
    names = set()
    for name, kind in METRICS.items():
        names.add(name)
        if kind == "histogram":
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


# ---------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def dockerfile_instructions():
    text = read("Dockerfile").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerignore_patterns():
    pats = []
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            pats.append(line.rstrip("/"))
    return pats


def ignored(rel, patterns):
    """Whether the build context leaves `rel` out (Docker's rules, without `!` exceptions)."""
    parts = rel.strip("/").split("/")
    for pat in patterns:
        need(not pat.startswith("!"), ".dockerignore exceptions (!) are not understood by this check")
        pat = pat.lstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and
                                                    fnmatch.fnmatchcase(parts[i - 1], pat[3:])):
                return True
    return False


DOCKER = {}


@check("Dockerfile: stages, user, ffmpeg, COPY sources in the build context")
def _():
    inst = dockerfile_instructions()
    froms = [rest for word, rest in inst if word == "FROM"]
    need(len(froms) >= 2, "not a multi-stage build")
    need(froms[-1].split()[0] == "debian:bookworm-slim", f"runtime image is {froms[-1]}, not debian:bookworm-slim")
    final = inst[max(i for i, (w, _) in enumerate(inst) if w == "FROM"):]
    users = [rest for word, rest in final if word == "USER"]
    need(users and users[-1].split(":")[0] not in ("root", "0"), "the runtime stage does not switch to a non-root USER")
    runs = " ".join(rest for word, rest in final if word == "RUN")
    need(re.search(r"apt-get install[^&;]*\bffmpeg\b", runs), "the runtime stage does not install ffmpeg")
    patterns = dockerignore_patterns()
    for must in ["target", ".git"]:
        need(ignored(must, patterns), f".dockerignore does not leave out {must}/")
    for needed in ["Cargo.toml", "Cargo.lock", "crates/livegate/src/main.rs", "examples/workers/ffmpeg-filter.sh"]:
        need(not ignored(needed, patterns), f".dockerignore leaves out {needed}, which the build needs")
    copies = {}
    for word, rest in inst:
        if word in ("COPY", "ADD") and "--from=" not in rest:
            args = [a for a in rest.split() if not a.startswith("--")]
            *srcs, dest = args
            for src in srcs:
                if src == ".":
                    continue
                need(os.path.exists(path(src)), f"{word} {src}: no such file in the build context")
                need(not ignored(src, patterns), f"{word} {src}: excluded by .dockerignore")
                copies[dest] = src
    DOCKER["copies"] = copies
    exposed = set()
    for word, rest in inst:
        if word == "EXPOSE":
            exposed.update(p if "/" in p else p + "/tcp" for p in rest.split())
    need(exposed == expected_ports(), f"EXPOSE {sorted(exposed)} != README defaults {sorted(expected_ports())}")
    return f"{len(froms)} stages, runtime {froms[-1]}, USER {users[-1]}, EXPOSE {' '.join(sorted(exposed))}"


def image_path_to_source(image_path):
    """/opt/livegate/workers/x.sh -> examples/workers/x.sh, through the Dockerfile's COPYs."""
    for dest, src in DOCKER.get("copies", {}).items():
        if dest.endswith("/") and image_path.startswith(dest):
            return os.path.join(src, image_path[len(dest):])
        if image_path == dest:
            return src
    return None


def git_mode(rel):
    out = run(["git", "ls-files", "-s", "--", rel]).stdout.split()
    return out[0] if out else None


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


COMPOSE = {}


@check("docker-compose.yml: compose-spec JSON schema (deploy/schemas/compose-spec.json)")
def _():
    COMPOSE.update(load_yaml("docker-compose.yml"))
    schema = json.loads(read("deploy/schemas/compose-spec.json"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.path))
    need(not errors, "; ".join(f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:5]))
    return f"services {', '.join(COMPOSE['services'])}"


def compose_check(compose_cmd):
    @check(f"docker-compose.yml: `{compose_cmd} config -q` (the compose client's own validation)")
    def _():
        res = run(compose_cmd.split() + ["-f", "docker-compose.yml", "config", "-q"],
                  env={**os.environ, "COMPOSE_PROJECT_NAME": "livegate-validate"})
        need(res.returncode == 0, (res.stderr or res.stdout).strip() or f"exit {res.returncode}")
        version = run(compose_cmd.split() + ["version", "--short"]).stdout.strip()
        return f"{compose_cmd} {version}"


def env_dict(service):
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: str(v) for k, v in env.items()}


def parse_port(spec):
    """`"127.0.0.1:9090:9090/tcp"` -> (published, target, protocol)."""
    if isinstance(spec, dict):
        return str(spec.get("published")), int(spec["target"]), spec.get("protocol", "tcp")
    spec, _, proto = str(spec).partition("/")
    parts = spec.split(":")
    return parts[-2] if len(parts) > 1 else None, int(parts[-1]), proto or "tcp"


def bind_mounts(service):
    for vol in service.get("volumes", []):
        if isinstance(vol, str):
            src, _, rest = vol.partition(":")
            target = rest.split(":")[0]
            if src.startswith((".", "/")):
                yield src, target
        elif vol.get("type") == "bind":
            yield vol["source"], vol["target"]


@check("docker-compose.yml: referenced files exist")
def _():
    n = 0
    for name, svc in COMPOSE["services"].items():
        build = svc.get("build")
        if build is not None:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            need(os.path.isdir(path(ctx)), f"{name}: build context {ctx} is not a directory")
            need(os.path.isfile(path(ctx, dockerfile)), f"{name}: no {dockerfile} in {ctx}")
            n += 1
        for src, _target in bind_mounts(svc):
            need(os.path.exists(path(src)), f"{name}: mounted {src} does not exist")
            n += 1
        for env_file in ([svc["env_file"]] if isinstance(svc.get("env_file"), str) else svc.get("env_file", [])):
            need(os.path.isfile(path(env_file)), f"{name}: env_file {env_file} does not exist")
            n += 1
    return f"{n} build contexts and mounts"


@check("docker-compose.yml: the gateway (ports, settings, worker, NAT IP, grace period)")
def _():
    svc = COMPOSE["services"]["livegate"]
    env = env_dict(svc)
    unknown = sorted(k for k in env if k.startswith("LIVE_AI_") and k not in SETTINGS)
    need(not unknown, f"variables not in README's table: {unknown}")
    ports = set()
    for spec in svc.get("ports", []):
        published, target, proto = parse_port(spec)
        need(published == str(target), f"port {spec}: published {published} != container {target}, but "
             "ICE candidates advertise the container port")
        ports.add(f"{target}/{proto}")
    need(ports == expected_ports(), f"ports {sorted(ports)} != README defaults {sorted(expected_ports())}")
    for role, var in [("http", "LIVE_AI_HTTP_ADDR"), ("whip", "LIVE_AI_WHIP_ADDR"), ("whep", "LIVE_AI_WHEP_ADDR")]:
        if var in env:
            need(port_of(env[var]) == PORTS[role][0], f"{var}={env[var]} but the port mapped is {PORTS[role][0]}")
    need(re.fullmatch(r"\$\{LIVE_AI_NAT_IP:-[^}]+\}", env.get("LIVE_AI_NAT_IP", "")),
         "LIVE_AI_NAT_IP must be ${LIVE_AI_NAT_IP:-<default>} so `LIVE_AI_NAT_IP=... docker compose up` sets it")
    pipeline = env.get("LIVE_AI_PIPELINE", "")
    need(pipeline.startswith("exec:"), f"LIVE_AI_PIPELINE={pipeline!r}, not the exec example worker")
    program = pipeline[len("exec:"):].split()[0]
    source = image_path_to_source(program)
    need(source, f"{program} is not installed by any COPY of the Dockerfile")
    need(os.path.isfile(path(source)), f"{program} comes from {source}, which does not exist")
    need(git_mode(source) in (None, "100755") and os.access(path(source), os.X_OK),
         f"{source} is not executable (git mode {git_mode(source)})")
    shutdown = seconds(env.get("LIVE_AI_SHUTDOWN_TIMEOUT", SETTINGS["LIVE_AI_SHUTDOWN_TIMEOUT"]))
    grace = seconds(svc.get("stop_grace_period", "10s"))
    need(grace > shutdown, f"stop_grace_period {grace}s is not longer than LIVE_AI_SHUTDOWN_TIMEOUT {shutdown}s")
    test = " ".join(svc.get("healthcheck", {}).get("test", []))
    need(f"/{PORTS['http'][0]}" in test and "/healthz" in test, "the healthcheck does not ask /healthz on the HTTP port")
    return f"{', '.join(sorted(ports))}; worker {program} <- {source}; grace {grace:g}s > {shutdown:g}s"


@check("docker-compose.yml: Prometheus and Grafana wiring")
def _():
    services = COMPOSE["services"]
    prom, graf = services["prometheus"], services["grafana"]
    mounts = dict(bind_mounts(prom))
    config_arg = next((a.split("=", 1)[1] for a in prom.get("command", []) if a.startswith("--config.file=")),
                      "/etc/prometheus/prometheus.yml")
    need(mounts.get("./deploy/prometheus/prometheus.yml") == config_arg,
         f"deploy/prometheus/prometheus.yml is not mounted at {config_arg}")
    prom_cfg = load_yaml("deploy/prometheus/prometheus.yml")
    targets = [t for job in prom_cfg["scrape_configs"] for sc in job.get("static_configs", [])
               for t in sc["targets"]]
    want = f"livegate:{PORTS['http'][0]}"
    need(want in targets, f"prometheus.yml scrapes {targets}, not {want}")
    gmounts = dict(bind_mounts(graf))
    need(gmounts.get("./deploy/grafana/provisioning") == "/etc/grafana/provisioning",
         "deploy/grafana/provisioning is not mounted at /etc/grafana/provisioning")
    providers = load_yaml("deploy/grafana/provisioning/dashboards/livegate.yml")["providers"]
    dash_dir = providers[0]["options"]["path"]
    need(gmounts.get("./deploy/grafana/dashboards") == dash_dir,
         f"deploy/grafana/dashboards is not mounted at the provider's path {dash_dir}")
    home = env_dict(graf).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        need(home.startswith(dash_dir + "/") and os.path.isfile(path("deploy/grafana/dashboards", home[len(dash_dir) + 1:])),
             f"home dashboard {home} is not a file of deploy/grafana/dashboards")
    sources = load_yaml("deploy/grafana/provisioning/datasources/prometheus.yml")["datasources"]
    prom_ports = {parse_port(p)[1] for p in prom.get("ports", [])} | {9090}
    url = sources[0]["url"]
    m = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/?", url)
    need(m and m.group(1) in services and int(m.group(2)) in prom_ports,
         f"datasource url {url} is not the prometheus service's port")
    need(sources[0]["type"] == "prometheus", "the datasource is not of type prometheus")
    return f"scrape {want}, datasource {url}, dashboards from {dash_dir}"


# ---------------------------------------------------------------------------------------------
# Prometheus configuration and dashboard queries, with promtool


def promtool_check(promtool):
    @check("deploy/prometheus/prometheus.yml: promtool check config")
    def _():
        res = run([promtool, "check", "config", "--syntax-only", "deploy/prometheus/prometheus.yml"])
        need(res.returncode == 0, (res.stdout + res.stderr).strip())

    @check("deploy/kubernetes/prometheus-scrape.yml: promtool check config (Kubernetes SD checked structurally)")
    def _():
        cfg = load_yaml("deploy/kubernetes/prometheus-scrape.yml")
        # Debian's promtool is built without Kubernetes service discovery: check that block
        # here, and the rest (relabelling, intervals) with promtool on a static stand-in.
        stand_in = copy.deepcopy(cfg)
        for job in stand_in["scrape_configs"]:
            for sd in job.pop("kubernetes_sd_configs", []):
                need(set(sd) <= {"role", "namespaces", "selectors", "api_server", "kubeconfig_file",
                                 "attach_metadata"}, f"unknown kubernetes_sd_configs keys {sorted(sd)}")
                need(sd.get("role") in ("endpoints", "endpointslice", "service", "pod", "node", "ingress"),
                     f"kubernetes_sd_configs role {sd.get('role')!r}")
                need("livegate" in sd.get("namespaces", {}).get("names", []), "the livegate namespace is not searched")
                job.setdefault("static_configs", []).append({"targets": ["stand-in:1"]})
            keep = [r for r in job.get("relabel_configs", []) if r.get("action") == "keep"]
            need(any(re.fullmatch(r["regex"], f"livegate;http") for r in keep),
                 "no keep rule selects the livegate Service's http port")
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump(stand_in, f)
        res = run([promtool, "check", "config", "--syntax-only", f.name])
        os.unlink(f.name)
        need(res.returncode == 0, (res.stdout + res.stderr).strip())


# ---------------------------------------------------------------------------------------------
# Grafana


DASH = {}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan", "atan2"}


def metric_names(expr):
    """The metric names a PromQL expression selects (functions, keywords and labels left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range and subquery durations
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word, after = m.group(0), e[m.end():].lstrip()
        if after.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        if re.match(r"\d", e[max(0, m.start() - 1):m.start()] or " "):
            continue  # a unit of a number (5m, 1e3)
        names.add(word)
    return names


def dashboard_exprs(dash):
    for panel in dash["panels"]:
        for sub in [panel] + panel.get("panels", []):
            for t in sub.get("targets", []):
                yield sub["title"], t.get("expr", "")


@check("deploy/grafana/dashboards/livegate.json: a Grafana dashboard")
def _():
    DASH.update(json.loads(read("deploy/grafana/dashboards/livegate.json")))
    need(DASH.get("uid") and DASH.get("title"), "no uid or title")
    ids = [p["id"] for p in DASH["panels"]]
    need(len(ids) == len(set(ids)), "panel ids are not unique")
    variables = {v["name"] for v in DASH.get("templating", {}).get("list", [])}
    queries = 0
    for panel in DASH["panels"]:
        need({"h", "w", "x", "y"} <= set(panel.get("gridPos", {})), f"panel {panel['title']!r} has no gridPos")
        need(panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, f"panel {panel['title']!r} is wider than the grid")
        if panel["type"] == "row":
            continue
        ds = panel.get("datasource", {})
        need(ds.get("type") == "prometheus" and ds.get("uid") == "${datasource}",
             f"panel {panel['title']!r} does not use the $datasource variable")
        need(panel.get("targets"), f"panel {panel['title']!r} has no query")
        for t in panel["targets"]:
            need(t.get("expr"), f"panel {panel['title']!r} has an empty query")
            for var in re.findall(r"\$(\w+)", t["expr"]):
                need(var.startswith("__") or var in variables, f"panel {panel['title']!r} uses undefined ${var}")
            queries += 1
    titles = " ".join(p["title"].lower() for p in DASH["panels"])
    for topic in ["streams", "viewers", "bitrate", "first frame", "pipeline latency", "errors"]:
        need(topic in titles, f"no panel about {topic}")
    return f"{len(ids)} panels, {queries} queries"


@check("deploy/grafana/dashboards/livegate.json: every metric queried is one the gateway exports")
def _():
    need(METRICS, "the list of exported metrics is empty (see the crates check)")
    exported = exported_series()
    used, unknown = set(), []
    for title, expr in dashboard_exprs(DASH):
        for name in metric_names(expr):
            used.add(name)
            if name not in exported:
                unknown.append(f"{name} (panel {title!r})")
    need(not unknown, "not exported by the gateway: " + ", ".join(sorted(set(unknown))))
    base = {re.sub(r"_(bucket|sum|count)$", "", n) if METRICS.get(re.sub(r"_(bucket|sum|count)$", "", n)) == "histogram" else n
            for n in used}
    unshown = sorted(n for n in METRICS if n not in base and n.startswith("livegate_"))
    return f"{len(used)} names used" + (f"; not shown: {', '.join(unshown)}" if unshown else "")


def series_labels(name):
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    if base != name and METRICS.get(base) == "histogram":
        return LABELS[base] | ({"le"} if name.endswith("_bucket") else set())
    return LABELS.get(name, set())


@check("deploy/grafana/dashboards/livegate.json: every label queried is one those metrics carry")
def _():
    need(LABELS, "the list of exported metrics is empty (see the crates check)")
    bad, n = [], 0
    for title, expr in dashboard_exprs(DASH):
        e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
        in_expr = set(TARGET_LABELS)
        for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}", e):
            own = series_labels(m.group(1)) | TARGET_LABELS
            in_expr |= series_labels(m.group(1))
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m.group(2)):
                n += 1
                if label not in own:
                    bad.append(f"{m.group(1)}{{{label}}} (panel {title!r})")
        for name in metric_names(expr):
            in_expr |= series_labels(name)
        for m in re.finditer(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", e):
            for label in re.findall(r"\w+", m.group(1)):
                n += 1
                if label not in in_expr:
                    bad.append(f"by ({label}) (panel {title!r})")
    need(not bad, "labels the metrics do not have: " + ", ".join(sorted(set(bad))))
    return f"{n} label uses"


def promql_check(promtool):
    @check("deploy/grafana/dashboards/livegate.json: every query is valid PromQL (promtool check rules)")
    def _():
        rules = []
        for i, (_title, expr) in enumerate(dashboard_exprs(DASH)):
            e = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
            e = re.sub(r"\$\{?(\w+)\}?", ".*", e)
            rules.append({"record": f"livegate:dashboard_query_{i}", "expr": e})
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        res = run([promtool, "check", "rules", f.name])
        os.unlink(f.name)
        need(res.returncode == 0, (res.stdout + res.stderr).strip())
        return f"{len(rules)} queries"


# ---------------------------------------------------------------------------------------------
# Kubernetes


K8S = {}


def kubernetes_check(kubectl):
    @check("deploy/kustomization.yaml: kubectl kustomize renders")
    def _():
        res = run([kubectl, "kustomize", "deploy"])
        need(res.returncode == 0, res.stderr.strip())
        docs = [d for d in yaml.safe_load_all(res.stdout) if d]
        for d in docs:
            K8S[(d["kind"], d["metadata"]["name"])] = d
        listed = {os.path.join("deploy", r) for r in load_yaml("deploy/kustomization.yaml")["resources"]}
        separate = {"deploy/kubernetes/servicemonitor.yaml", "deploy/kubernetes/prometheus-scrape.yml"}
        on_disk = {os.path.relpath(p, ROOT) for p in glob.glob(path("deploy/kubernetes/*.y*ml"))}
        orphans = sorted(on_disk - listed - separate)
        need(not orphans, f"manifests neither in the kustomization nor checked separately: {orphans}")
        version = run([kubectl, "version", "--client"]).stdout.splitlines()
        return f"{len(docs)} objects: {', '.join(f'{k}/{n}' for k, n in K8S)} ({'; '.join(version)})"

    @check(f"Kubernetes objects: strict OpenAPI schemas of Kubernetes {' and '.join(KUBERNETES_VERSIONS)} (kubernetes-validate)")
    def _():
        need(K8S, "nothing rendered")
        for version in KUBERNETES_VERSIONS:
            for (kind, name), doc in K8S.items():
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    raise CheckFailed(f"{kind}/{name} for {version}: {'/'.join(map(str, e.path))}: {e.message}")
        return f"{len(K8S)} objects"

    @check("deploy/kubernetes/servicemonitor.yaml: ServiceMonitor CRD schema (deploy/schemas/servicemonitor-v1.json)")
    def _():
        sm = load_yaml("deploy/kubernetes/servicemonitor.yaml")
        need(sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor", "not a v1 ServiceMonitor")
        schema = strict_openapi(json.loads(read("deploy/schemas/servicemonitor-v1.json")))
        schema["properties"]["metadata"] = {"type": "object", "required": ["name", "namespace"]}
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(sm))
        need(not errors, "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]))
        svc = K8S[("Service", "livegate")]
        sel = sm["spec"]["selector"]["matchLabels"]
        need(sel.items() <= svc["metadata"]["labels"].items(), f"selector {sel} does not match the Service's labels")
        need(svc["metadata"]["namespace"] in sm["spec"]["namespaceSelector"]["matchNames"], "wrong namespace")
        port_names = {p["name"] for p in svc["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            need(ep["port"] in port_names, f"endpoint port {ep['port']} is not a port of the Service")
            need(ep.get("path", "/metrics") == "/metrics", "endpoint path is not /metrics")
        return f"selects Service/livegate port {sm['spec']['endpoints'][0]['port']}"

    @check("Kubernetes: gateway Deployment (hostNetwork, ports, NAT IP, probes, grace, resources)")
    def _():
        dep = K8S[("Deployment", "livegate")]
        pod = dep["spec"]["template"]["spec"]
        cm = K8S[("ConfigMap", "livegate-config")]["data"]
        unknown = sorted(k for k in cm if k not in SETTINGS)
        need(not unknown, f"ConfigMap keys not in README's table: {unknown}")
        need(pod.get("hostNetwork") is True, "hostNetwork is not true: the single UDP ports would be unreachable")
        need(pod.get("dnsPolicy") == "ClusterFirstWithHostNet", "dnsPolicy should be ClusterFirstWithHostNet with hostNetwork")
        (c,) = pod["containers"]
        refs = {e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e}
        need("livegate-config" in refs, "the container does not read the livegate-config ConfigMap")
        ports = {p["name"]: (p["containerPort"], p.get("protocol", "TCP").lower()) for p in c["ports"]}
        need(set(ports.values()) == set(PORTS.values()), f"container ports {ports} != README defaults {PORTS}")
        for role, var in [("http", "LIVE_AI_HTTP_ADDR"), ("whip", "LIVE_AI_WHIP_ADDR"), ("whep", "LIVE_AI_WHEP_ADDR")]:
            need(ports.get(role) == PORTS[role], f"port {role} is {ports.get(role)}, README says {PORTS[role]}")
            need(port_of(cm.get(var, SETTINGS[var])) == PORTS[role][0], f"ConfigMap {var} is not port {PORTS[role][0]}")
        nat = next((e for e in c.get("env", []) if e["name"] == "LIVE_AI_NAT_IP"), None)
        need(nat and nat.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.hostIP",
             "LIVE_AI_NAT_IP does not come from status.hostIP")
        for probe, want in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
            get = c.get(probe, {}).get("httpGet", {})
            need(get.get("path") == want, f"{probe} does not ask {want}")
            need(get.get("port") in ("http", PORTS["http"][0]), f"{probe} is not on the HTTP port")
        shutdown = seconds(cm.get("LIVE_AI_SHUTDOWN_TIMEOUT", SETTINGS["LIVE_AI_SHUTDOWN_TIMEOUT"]))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        need(grace > shutdown, f"terminationGracePeriodSeconds {grace} is not longer than LIVE_AI_SHUTDOWN_TIMEOUT {shutdown:g}s")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            need({"cpu", "memory"} <= set(res.get(kind, {})), f"resources.{kind} lacks cpu or memory")
        need(pod.get("securityContext", {}).get("runAsNonRoot") is True, "runAsNonRoot is not set")
        svc = K8S[("Service", "livegate")]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        need(svc["spec"]["selector"].items() <= labels.items(), "the Service's selector does not match the pods")
        for p in svc["spec"]["ports"]:
            need(p["targetPort"] in ports or p["targetPort"] == PORTS["http"][0], f"Service targetPort {p['targetPort']} is no container port")
        need(any(p["port"] == PORTS["http"][0] for p in svc["spec"]["ports"]), "the Service does not offer the HTTP port")
        return (f"ports {', '.join(f'{n} {p}/{t}' for n, (p, t) in ports.items())}; grace {grace}s > "
                f"{shutdown:g}s; image {c['image']}")

    @check("Kubernetes: Grafana dashboard ConfigMap is generated from deploy/grafana/dashboards/livegate.json")
    def _():
        cm = K8S[("ConfigMap", "livegate-grafana-dashboard")]
        need(cm["data"].get("livegate.json") == read("deploy/grafana/dashboards/livegate.json"),
             "its livegate.json differs from the dashboard file")
        need(cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1", "no grafana_dashboard label")
        return "identical, labelled grafana_dashboard=1"


def strict_openapi(schema):
    """A CRD's schema as the API server applies it: unknown properties are an error here."""
    if isinstance(schema, dict):
        out = {k: strict_openapi(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        return out
    if isinstance(schema, list):
        return [strict_openapi(s) for s in schema]
    return schema


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--compose", required=True, help='the compose client, e.g. "docker compose"')
    ap.add_argument("--kubectl", required=True)
    args = ap.parse_args()
    compose_check(args.compose)
    promtool_check(args.promtool)
    promql_check(args.promtool)
    kubernetes_check(args.kubectl)
    if failures:
        print(f"\nvalidate-deploy: {len(failures)} check(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
