//! Reading the server's event stream (Server-Sent Events) in tests.

use std::time::Duration;

use threadline_api_types::ProcessEventView;

/// Reads Server-Sent Events until `done` says so or the timeout passes.
pub async fn read_events(
    mut response: reqwest::Response,
    timeout: Duration,
    mut done: impl FnMut(&[ProcessEventView]) -> bool,
) -> Vec<ProcessEventView> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while !done(&events) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: "))
                && let Ok(event) = serde_json::from_str(data)
            {
                events.push(event);
            }
        }
    }
    events
}
