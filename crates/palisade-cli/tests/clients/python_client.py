"""The official Python client against the lab's API (run by tests/lab.rs): create, watch,
exec over WebSocket (v4, the only protocol this client speaks), logs, a refused invalid
NetworkPolicy and a valid one. Prints what it saw as JSON; the Rust test judges it."""
import json
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

config.load_kube_config(config_file=sys.argv[1])
core, apps, net = client.CoreV1Api(), client.AppsV1Api(), client.NetworkingV1Api()
seen = {}

core.create_namespace({"metadata": {"name": "py"}})
template = {"metadata": {"labels": {"app": "py"}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "command": ["sh", "-c", "echo started $(hostname); exec sleep infinity"]}]}}
apps.create_namespaced_deployment("py", {"metadata": {"name": "py"},
                                         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "py"}}, "template": template}})

# Watch until both pods run and are ready.
ready = set()
w = watch.Watch()
for event in w.stream(core.list_namespaced_pod, "py", label_selector="app=py", timeout_seconds=60):
    pod = event["object"]
    conditions = {c.type: c.status for c in (pod.status.conditions or [])}
    if event["type"] != "DELETED" and pod.status.phase == "Running" and conditions.get("Ready") == "True":
        ready.add(pod.metadata.name)
    if len(ready) == 2:
        w.stop()
seen["ready"] = sorted(ready)
pod = seen["ready"][0]

# exec: stdout, stderr and the exit status.
session = stream(core.connect_get_namespaced_pod_exec, pod, "py",
                 command=["sh", "-c", "echo out; echo err >&2; exit 3"],
                 stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
session.run_forever(timeout=20)
seen["exec"] = {"stdout": session.read_stdout(), "stderr": session.read_stderr(), "returncode": session.returncode}

seen["log"] = core.read_namespaced_pod_log(pod, "py")

bad = {"metadata": {"name": "bad"}, "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0/8"}}]}]}}
try:
    net.create_namespaced_network_policy("py", bad)
    seen["invalid"] = "accepted"
except ApiException as error:
    seen["invalid"] = {"status": error.status, "body": json.loads(error.body)}

good = {"metadata": {"name": "web"}, "spec": {"podSelector": {"matchLabels": {"app": "py"}}, "policyTypes": ["Ingress"]}}
net.create_namespaced_network_policy("py", good)
seen["policies"] = [p.metadata.name for p in net.list_namespaced_network_policy("py").items]
seen["selected"] = [p.metadata.name for p in core.list_namespaced_pod("py", label_selector="app=py,tier notin (db)").items]
print(json.dumps(seen))
