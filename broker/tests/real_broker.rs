//! The real `tumult-broker` binary over real TCP and a real disk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use broker::{read_frame, Client, ErrorCode, Response, ResponseFrame, TokioNetwork, UNKNOWN_REQUEST_ID};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A broker process, killed when dropped.
struct RealBroker {
    child: Child,
    addr: String,
}

impl RealBroker {
    fn start(data_dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tumult-broker"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("broker starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .expect("address line")
            .to_string();
        Self { child, addr }
    }

    fn kill(&mut self) {
        // SIGKILL: no chance to flush or clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn reply_to_raw(addr: &str, bytes: &[u8]) -> (ResponseFrame, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let reply: ResponseFrame = tokio::time::timeout(TIMEOUT, read_frame(&mut stream, 1 << 20))
        .await
        .expect("the broker replies in time")
        .unwrap()
        .expect("a reply frame");
    // Then the broker closes the connection.
    let after = tokio::time::timeout(TIMEOUT, read_frame::<ResponseFrame, _>(&mut stream, 1 << 20)).await;
    let closed = matches!(after, Ok(Ok(None)) | Ok(Err(_)));
    (reply, closed)
}

fn error_code(reply: &ResponseFrame) -> Option<ErrorCode> {
    match &reply.response {
        Response::Error { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn a_malformed_frame_gets_an_error_reply_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let broker = RealBroker::start(dir.path());

    let payload = b"\xff{not json";
    let mut garbage = (payload.len() as u32).to_be_bytes().to_vec();
    garbage.extend_from_slice(payload);
    let (reply, closed) = reply_to_raw(&broker.addr, &garbage).await;
    assert_eq!(reply.id, UNKNOWN_REQUEST_ID);
    assert_eq!(error_code(&reply), Some(ErrorCode::MalformedFrame));
    assert!(closed, "the connection is closed after a malformed frame");

    let oversized = (64u32 << 20).to_be_bytes();
    let (reply, closed) = reply_to_raw(&broker.addr, &oversized).await;
    assert_eq!(error_code(&reply), Some(ErrorCode::FrameTooLarge));
    assert!(closed);

    // A well-formed frame of the wrong shape is malformed too.
    let wrong = br#"{"id":3,"request":{"op":"explode"}}"#;
    let mut frame = (wrong.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(wrong);
    let (reply, _) = reply_to_raw(&broker.addr, &frame).await;
    assert_eq!(error_code(&reply), Some(ErrorCode::MalformedFrame));

    let mut client = Client::connect(&TokioNetwork, &broker.addr, TIMEOUT)
        .await
        .unwrap();
    client.publish("q", b"17".to_vec()).await.unwrap();
    let delivery = client.get("q").await.unwrap().expect("the message");
    assert_eq!(delivery.body, b"17");
    client.ack("q", delivery.tag).await.unwrap();
    assert_eq!(client.get("q").await.unwrap(), None);
}

#[tokio::test]
async fn confirmed_messages_survive_sigkill_with_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = RealBroker::start(dir.path());
    let mut client = Client::connect(&TokioNetwork, &broker.addr, TIMEOUT)
        .await
        .unwrap();
    for value in 0..50u32 {
        client.publish("q", value.to_string().into_bytes()).await.unwrap();
    }
    let first = client.get("q").await.unwrap().unwrap();
    client.ack("q", first.tag).await.unwrap();
    broker.kill();

    let broker = RealBroker::start(dir.path());
    let mut client = Client::connect(&TokioNetwork, &broker.addr, TIMEOUT)
        .await
        .unwrap();
    let mut values = Vec::new();
    while let Some(delivery) = client.get("q").await.unwrap() {
        values.push(String::from_utf8(delivery.body).unwrap().parse::<u32>().unwrap());
        client.ack("q", delivery.tag).await.unwrap();
    }
    assert_eq!(values, (1..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_nack_returns_the_message_and_metadata_names_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let broker = RealBroker::start(dir.path());
    let mut client = Client::connect(&TokioNetwork, &broker.addr, TIMEOUT)
        .await
        .unwrap();
    client.publish("q", b"1".to_vec()).await.unwrap();
    client.publish("q", b"2".to_vec()).await.unwrap();
    let first = client.get("q").await.unwrap().unwrap();
    client.nack("q", first.tag).await.unwrap();
    let again = client.get("q").await.unwrap().unwrap();
    assert_eq!(
        (again.tag, again.body),
        (first.tag, b"1".to_vec()),
        "back at the head of the queue"
    );
    let err = client.nack("q", 999).await.unwrap_err();
    assert!(err.is_definite(), "an unknown tag is a definite refusal: {err}");
    let leaders = client.metadata(&broker.addr, &["q"]).await.unwrap();
    assert_eq!(leaders, vec![("q".to_string(), Some(broker.addr.clone()))]);
}
