//! A TCP proxy a test controls, to take a server away and bring it back without touching the
//! server (other tests use it): [`Proxy::cut`] drops every connection and refuses new ones,
//! [`Proxy::restore`] forwards again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// A proxy on a free local port in front of one server.
pub struct Proxy {
    address: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// A proxy forwarding to `server` (`host:port`).
    pub async fn start(server: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let open = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio::spawn({
            let open = open.clone();
            let connections = connections.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        // Cut: the client sees its connection closed at once.
                        drop(client);
                        continue;
                    }
                    let server = server.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut upstream) = TcpStream::connect(&server).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    });
                    connections.lock().await.push(forward);
                }
            }
        });
        Proxy {
            address,
            open,
            connections,
            acceptor,
        }
    }

    /// `host:port` to give the client instead of the server's.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().await.drain(..) {
            connection.abort();
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        if let Ok(connections) = self.connections.try_lock() {
            for connection in connections.iter() {
                connection.abort();
            }
        }
    }
}
