//! Serving container logs (jobs without file logging): read from the kubelet through the
//! apiserver as the calling tool (`pods/log`, which the tool's RBAC allows), from every pod of
//! the job, each line with its pod, container and the kubelet's time.
//!
//! Bounded: at most [`MAX_PODS`] pods are read, each reply is capped in bytes, and a followed
//! stream passes lines through a small channel, so a slow reader stops the reads from the
//! apiserver instead of making the gateway buffer. A followed stream ends when the client goes
//! away, the gateway shuts down, or [`FOLLOW_LIMIT`] has passed; per tool only
//! `JOBS_GATEWAY_MAX_LOG_FOLLOWS` are open at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use serde_json::json;

use super::error::{from_kube, ApiError};
use crate::runtime::ToolRuntime;
use jobs_core::podlogs::{self, PodLine};

/// Most pods whose logs one request reads (the newest ones).
pub const MAX_PODS: usize = 20;
/// Containers whose logs one request reads at once.
const PARALLEL_READS: usize = 4;
/// How long a followed log stream (file or container logs) stays open at most.
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(3600);
/// How often a followed stream looks for new pods of the job (a restart, a new replica).
const POD_POLL: Duration = Duration::from_secs(2);
/// Chunks a followed stream holds for a slow reader before it stops reading the apiserver.
const CHANNEL_CHUNKS: usize = 16;

/// The containers of a pod that have output to read: started, running or finished.
fn started_containers(pod: &Pod) -> Vec<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|statuses| {
            statuses
                .iter()
                .filter(|c| {
                    let state = c.state.as_ref();
                    let ran = state.is_some_and(|s| s.running.is_some() || s.terminated.is_some());
                    let ran_before = c
                        .last_state
                        .as_ref()
                        .is_some_and(|s| s.terminated.is_some());
                    ran || ran_before
                })
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}

/// The job's pods, oldest first, at most the newest [`MAX_PODS`].
async fn pods_of(rt: &ToolRuntime, job: &str) -> Result<Vec<Pod>, ApiError> {
    let mut pods = rt
        .job_pods(job)
        .await
        .map_err(|e| from_kube(&e, "list the job's pods"))?;
    pods.sort_by(|a, b| {
        (&a.metadata.creation_timestamp, &a.metadata.name)
            .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
    });
    let skip = pods.len().saturating_sub(MAX_PODS);
    pods.drain(..skip);
    Ok(pods)
}

/// Whether a failed log read means "nothing to read there (yet)": the pod went away, or its
/// container is waiting (ContainerCreating, CrashLoopBackOff between runs).
fn nothing_there(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404 || s.code == 400)
}

fn since_seconds(since: Option<DateTime<Utc>>) -> Option<i64> {
    since.map(|s| (Utc::now() - s).num_seconds().max(0) + 1)
}

/// A container's last `lines` lines within `since`..=`until`, oldest first. Read as a stream of
/// bytes: any byte is accepted (decoded lossily), lines are capped, and at most `lines` of them
/// are kept, so memory stays at most `lines` capped lines however long the log is.
async fn read_container(
    rt: &ToolRuntime,
    pod: &str,
    container: &str,
    lines: usize,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<PodLine>, kube::Error> {
    let lp = LogParams {
        container: Some(container.to_string()),
        timestamps: true,
        // without `until` the kubelet's own tail is what is wanted; with it, the lines after
        // `until` must not push the wanted ones out of the tail, so all from `since` are read
        tail_lines: until.is_none().then_some(lines as i64),
        since_seconds: since_seconds(since),
        ..LogParams::default()
    };
    let mut reader = rt.pod_log_stream(pod, &lp).await?;
    let mut kept = VecDeque::new();
    let line_max = jobs_core::logs::MAX_LINE_BYTES + 64;
    // a stream cut short keeps what was read
    while let Ok(Some(raw)) = bounded_line(&mut reader, line_max).await {
        let text = String::from_utf8_lossy(&raw);
        let Some((time, message)) = podlogs::parse_line(&text) else {
            continue;
        };
        if since.is_some_and(|s| time < s) {
            continue;
        }
        if until.is_some_and(|u| time > u) {
            break;
        }
        kept.push_back(PodLine {
            time,
            pod: pod.to_string(),
            container: container.to_string(),
            message: podlogs::capped(message),
        });
        if kept.len() > lines {
            kept.pop_front();
        }
    }
    Ok(kept.into())
}

/// The last `lines` lines of every started container of the job's pods, oldest first,
/// within `since`..=`until`. A container that cannot be read is left out (and logged);
/// only when every read fails is that the answer.
pub async fn read(
    rt: &ToolRuntime,
    job: &str,
    lines: usize,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<Vec<PodLine>, ApiError> {
    let pods = pods_of(rt, job).await?;
    let targets: Vec<(String, String)> = pods
        .iter()
        .flat_map(|pod| {
            let name = pod_name(pod);
            started_containers(pod)
                .into_iter()
                .map(move |c| (name.clone(), c))
        })
        .collect();
    let results: Vec<Result<Vec<PodLine>, kube::Error>> = futures::stream::iter(targets)
        .map(|(pod, c)| {
            let rt = rt.clone();
            async move { read_container(&rt, &pod, &c, lines, since, until).await }
        })
        .buffer_unordered(PARALLEL_READS)
        .collect()
        .await;
    let mut all = Vec::new();
    let mut failed = None;
    let mut read_any = false;
    for r in results {
        match r {
            Ok(lines) => {
                read_any = true;
                all.extend(lines);
            }
            Err(e) if nothing_there(&e) => read_any = true,
            Err(e) => {
                tracing::info!(job, error = %e, "a container's log could not be read");
                failed = Some(e);
            }
        }
    }
    if let (false, Some(e)) = (read_any, failed) {
        return Err(from_kube(&e, "read the job's logs"));
    }
    Ok(podlogs::merge(all, until, lines))
}

/// One NDJSON line of an entry (release 14 reads no `container`).
pub fn ndjson_line(line: &PodLine, with_container: bool) -> String {
    let e = line.entry();
    let mut v = json!({"datetime": e.datetime, "pod": e.pod, "message": e.message});
    if with_container {
        v["container"] = json!(e.container);
    }
    format!("{v}\n")
}

/// Followed log streams open per tool.
#[derive(Clone, Default)]
pub struct FollowSlots {
    open: Arc<Mutex<HashMap<String, usize>>>,
    limit: usize,
}

/// One open followed stream; its slot is given back when this is dropped.
pub struct FollowSlot {
    slots: FollowSlots,
    tool: String,
}

impl FollowSlots {
    pub fn new(limit: usize) -> Self {
        Self {
            open: Arc::default(),
            limit,
        }
    }

    /// A slot for one more followed stream of `tool`, or 429 when it has its limit open.
    pub fn acquire(&self, tool: &str) -> Result<FollowSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(tool.to_string()).or_insert(0);
        if *n >= self.limit {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Tool '{tool}' already follows {} log streams, the most allowed at once; end one (Ctrl-C) and try again",
                    self.limit
                ),
            ));
        }
        *n += 1;
        Ok(FollowSlot {
            slots: self.clone(),
            tool: tool.to_string(),
        })
    }

    pub fn open_for(&self, tool: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(tool).copied().unwrap_or(0)
    }
}

impl Drop for FollowSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.tool) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.tool);
            }
        }
    }
}

/// Reads one line of at most `max` bytes (the rest of a longer line is skipped); `None` at
/// the end of the stream.
async fn bounded_line<R: futures::AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(any.then_some(line));
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        reader.consume_unpin(take);
        if done {
            return Ok(Some(line));
        }
    }
}

/// Whether a container of a pod that does not restart it has terminated, or the pod is gone.
async fn container_done(rt: &ToolRuntime, pod: &str, container: &str) -> bool {
    match rt.pod(pod).await {
        Ok(p) => p
            .status
            .and_then(|s| s.container_statuses)
            .and_then(|cs| cs.into_iter().find(|c| c.name == container))
            .and_then(|c| c.state)
            .is_none_or(|state| state.terminated.is_some()),
        Err(kube::Error::Api(s)) if s.code == 404 => true,
        // unknown: try again at the next turn
        Err(_) => false,
    }
}

/// Follows one container: its current run, and the next ones of a pod that restarts its
/// containers, until the pod is gone or `tx` is closed. Lines at or before `after` were sent.
#[allow(clippy::too_many_arguments)]
async fn follow_container(
    rt: ToolRuntime,
    pod: String,
    container: String,
    restarts: bool,
    mut after: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    with_container: bool,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let line_max = jobs_core::logs::MAX_LINE_BYTES + 64;
    // the stream ends at `until`, whether or not a line comes
    let until_at = until
        .map(|u| tokio::time::Instant::now() + (u - Utc::now()).to_std().unwrap_or(Duration::ZERO));
    let until_passed = async move {
        match until_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_passed);
    loop {
        let from = after.or(since);
        let lp = LogParams {
            container: Some(container.clone()),
            follow: true,
            timestamps: true,
            since_seconds: since_seconds(from),
            ..LogParams::default()
        };
        match rt.pod_log_stream(&pod, &lp).await {
            Ok(mut reader) => loop {
                let line = tokio::select! {
                    l = bounded_line(&mut reader, line_max) => l,
                    _ = tx.closed() => return,
                    _ = &mut until_passed => return,
                };
                let Ok(Some(raw)) = line else { break };
                let text = String::from_utf8_lossy(&raw);
                let Some((time, message)) = podlogs::parse_line(&text) else {
                    continue;
                };
                if until.is_some_and(|u| time > u) {
                    return; // a container's lines come in time order
                }
                if after.is_some_and(|a| time <= a) || since.is_some_and(|s| time < s) {
                    continue;
                }
                after = Some(time);
                let line = PodLine {
                    time,
                    pod: pod.clone(),
                    container: container.clone(),
                    message: podlogs::capped(message),
                };
                if tx
                    .send(Bytes::from(ndjson_line(&line, with_container)))
                    .await
                    .is_err()
                {
                    return;
                }
            },
            Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 404) => return,
            Err(e) if nothing_there(&e) => {}
            Err(_) => {}
        }
        // the stream ended: a pod that restarts its container runs it again (continuous
        // jobs); one that does not is done once its container has terminated (a stream can
        // also end because a connection was cut while the container still runs)
        if until.is_some_and(|u| Utc::now() > u) {
            return;
        }
        if !restarts && container_done(&rt, &pod, &container).await {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POD_POLL) => {}
            _ = tx.closed() => return,
            _ = &mut until_passed => return,
        }
    }
}

/// A followed stream: first the lines already read (`initial`, oldest first), then new lines
/// of every pod of the job as they come, new pods included. `floor`: lines up to this time
/// were not asked for (a request for no past lines), whatever `initial` holds.
#[allow(clippy::too_many_arguments)]
pub fn follow(
    rt: ToolRuntime,
    job: String,
    initial: Vec<PodLine>,
    floor: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    with_container: bool,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    slot: FollowSlot,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let mut after: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    let mut first = String::new();
    for l in &initial {
        after.insert((l.pod.clone(), l.container.clone()), l.time);
        first.push_str(&ndjson_line(l, with_container));
    }
    // a container with no line among the initial ones had none newer than the newest of them
    // (the initial lines are the newest of all pods): it is followed from that time on
    let newest_initial = initial.last().map(|l| l.time).or(floor);
    tokio::spawn(async move {
        let _slot = slot;
        let deadline = tokio::time::Instant::now() + FOLLOW_LIMIT;
        if !first.is_empty() && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut readers = tokio::task::JoinSet::new();
        let mut following: HashSet<(String, String)> = HashSet::new();
        loop {
            let past_until = until.is_some_and(|u| Utc::now() > u);
            let listed = if past_until {
                Ok(Vec::new()) // no new readers after `until`; the running ones end by themselves
            } else {
                pods_of(&rt, &job).await
            };
            if let Err(e) = &listed {
                // the tool's credentials are refused now: the stream ends
                if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::UNAUTHORIZED {
                    break;
                }
            }
            if let Ok(pods) = listed {
                for pod in &pods {
                    let name = pod_name(pod);
                    let restarts = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.restart_policy.as_deref())
                        .is_none_or(|p| p != "Never");
                    for c in started_containers(pod) {
                        let key = (name.clone(), c.clone());
                        if !following.insert(key.clone()) {
                            continue;
                        }
                        readers.spawn(follow_container(
                            rt.clone(),
                            name.clone(),
                            c,
                            restarts,
                            after.get(&key).copied().or(newest_initial),
                            since,
                            until,
                            with_container,
                            tx.clone(),
                        ));
                    }
                }
            }
            // a finished reader is forgotten only when its pod is gone, so it is not re-read
            while readers.try_join_next().is_some() {}
            if past_until && readers.is_empty() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(POD_POLL) => {}
                _ = tx.closed() => break,
                _ = stopping.wait_for(|stop| *stop) => break,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        readers.abort_all();
    });
    let stream = tokio_stream_of(rx);
    Body::from_stream(stream)
}

fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_slots_are_capped_per_tool_and_given_back() {
        let slots = FollowSlots::new(2);
        let a1 = slots.acquire("alice").unwrap_or_else(|e| panic!("{e:?}"));
        let _a2 = slots.acquire("alice").unwrap_or_else(|e| panic!("{e:?}"));
        let refused = slots
            .acquire("alice")
            .err()
            .unwrap_or_else(|| panic!("third slot"));
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let _b = slots.acquire("bob").unwrap_or_else(|e| panic!("{e:?}"));
        drop(a1);
        assert_eq!(slots.open_for("alice"), 1);
        assert!(slots.acquire("alice").is_ok());
    }

    #[tokio::test]
    async fn bounded_lines() {
        let data: &[u8] = b"short\na very long line indeed\n\nlast";
        let mut r = futures::io::BufReader::with_capacity(4, data);
        let mut got = Vec::new();
        while let Some(l) = bounded_line(&mut r, 8)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            got.push(String::from_utf8_lossy(&l).into_owned());
        }
        assert_eq!(got, ["short\n", "a very l", "\n", "last"]);
    }
}
