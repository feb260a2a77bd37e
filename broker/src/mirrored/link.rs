//! One link per peer: sends queued mirror messages in order, in batches, and answers each
//! waiting publisher. A batch not answered in time drops the connection; its waiters see a
//! failure, and the next batch reconnects.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{lock, LinkItem, MirrorNode};
use crate::client::Client;
use crate::net::Network;
use crate::seams::Spawner;

/// Deadline for one exchange with a peer.
const PEER_TIMEOUT: Duration = Duration::from_millis(300);
/// Most messages in one request.
const BATCH_MAX: usize = 256;

pub(super) fn spawn(
    node: &Arc<Mutex<MirrorNode>>,
    peer: u64,
    addr: String,
    mut queue: mpsc::Receiver<LinkItem>,
    network: &Arc<dyn Network>,
    spawner: &Arc<dyn Spawner>,
) {
    let node = Arc::clone(node);
    let network = Arc::clone(network);
    let me = lock(&node).me;
    spawner.spawn(Box::pin(async move {
        let mut connection: Option<Client> = None;
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH_MAX {
                match queue.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            if connection.is_none() {
                connection = Client::connect(network.as_ref(), &addr, PEER_TIMEOUT).await.ok();
            }
            // A message that does not encode (it always does) goes as null, which the peer
            // refuses: its waiter hears a refusal rather than nothing.
            let (messages, replies): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .map(|i| (serde_json::to_value(&i.message).unwrap_or_default(), i.reply))
                .unzip();
            let answers = match connection.as_mut() {
                Some(client) => client.mirror(me, messages).await.ok(),
                None => None,
            };
            match &answers {
                Some(_) => lock(&node).heard(peer),
                None => connection = None,
            }
            for (i, reply) in replies.into_iter().enumerate() {
                if let Some(reply) = reply {
                    let accepted = answers.as_ref().and_then(|a| a.get(i)).copied().unwrap_or(false);
                    let _ = reply.send(accepted);
                }
            }
            if answers.is_none() {
                // Do not spin against an unreachable peer.
                tokio::time::sleep(PEER_TIMEOUT).await;
            }
        }
    }));
}
