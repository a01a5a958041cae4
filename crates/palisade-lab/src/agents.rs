//! One agent per node, as the DaemonSet runs one per node on a cluster: a thread that entered
//! the node's network namespace and runs `palisade-agent`'s reconcile step there (nft runs as
//! a child of that thread, so it programs that node's kernel), plus the node's Service
//! table.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use palisade_agent::Reconciler;
use palisade_model::Cluster;
use palisade_nft::{NftBinary, RenderOptions};

use crate::error::LabError;
use crate::topology::NodeInfo;

struct Work {
    cluster: Arc<Cluster>,
    proxy: String,
    reply: Sender<Result<String, String>>,
}

pub struct NodeAgent {
    pub node: String,
    work: Sender<Work>,
}

/// Applies an nft text file in one transaction (the calling thread's namespace).
fn nft_text(text: &str) -> Result<(), String> {
    let mut child = Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map_err(|e| format!("cannot run nft: {e}"))?;
    child.stdin.take().expect("piped").write_all(text.as_bytes()).map_err(|e| format!("writing to nft: {e}"))?;
    let output = child.wait_with_output().map_err(|e| format!("waiting for nft: {e}"))?;
    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).trim().to_string()) }
}

fn run(node: NodeInfo, work: Receiver<Work>) {
    let entered = std::fs::File::open(&node.netns).map_err(|e| e.to_string()).and_then(|f| nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string()));
    let mut reconciler = Reconciler::new(node.name.clone(), NftBinary::default(), RenderOptions::default());
    for item in work {
        let result = match &entered {
            Err(e) => Err(format!("{}: cannot enter the node's namespace: {e}", node.name)),
            Ok(()) => nft_text(&item.proxy)
                .map_err(|e| format!("{}: the Service table was rejected: {e}", node.name))
                .and_then(|()| reconciler.reconcile(&item.cluster).map(|report| report.to_string()).map_err(|e| format!("{}: {e}", node.name))),
        };
        let _ = item.reply.send(result);
    }
}

impl NodeAgent {
    pub fn start(node: &NodeInfo) -> Self {
        let (work, receiver) = channel();
        let info = node.clone();
        std::thread::Builder::new().name(format!("agent-{}", node.name)).spawn(move || run(info, receiver)).expect("spawn agent thread");
        Self { node: node.name.clone(), work }
    }
}

/// Hands the cluster to every agent (each with its node's Service table) and waits for all:
/// the nodes apply in parallel. Returns each node's report.
pub fn reconcile_all(agents: &[NodeAgent], cluster: &Arc<Cluster>, proxies: &[String]) -> Result<Vec<String>, LabError> {
    let mut replies = Vec::new();
    for (agent, proxy) in agents.iter().zip(proxies) {
        let (reply, receiver) = channel();
        agent
            .work
            .send(Work { cluster: cluster.clone(), proxy: proxy.clone(), reply })
            .map_err(|_| LabError::failed(format!("the agent of {} stopped", agent.node)))?;
        replies.push((agent.node.clone(), receiver));
    }
    replies
        .into_iter()
        .map(|(node, receiver)| receiver.recv().map_err(|_| LabError::failed(format!("the agent of {node} stopped"))).and_then(|r| r.map_err(LabError::failed)))
        .collect()
}
