//! resolver - trivial-rewrite lookups for the queue store, answered
//! synchronously (Postfix: the resolve half of `qmgr_message_resolve` in
//! `postfix/src/oqmgr/qmgr_message.c`, which also blocks on
//! `resolve_clnt_query`).
//!
//! The queue store runs inside the actors' single thread and its
//! [`QueueStore`](crate::scanner::QueueStore) calls are synchronous, while
//! the trivial-rewrite client ([`RewriteClient`]) is async. A dedicated
//! thread owns the client and a private current-thread runtime; the store
//! sends it a whole batch of addresses and waits for the answers. One
//! thread hop per batch keeps the cost of the boundary small, and the
//! client's one-entry cache still works because a batch arrives sorted by
//! domain.
//!
//! # Failure
//! The client retries a broken or absent trivial-rewrite for ever, as
//! Postfix does (the daemon waits rather than misroute mail). If the thread
//! itself is gone (it never exits while the store lives), every address
//! resolves to `retry` with `4.3.0 address resolver failure`, so the mail
//! is deferred, never lost.

use std::path::Path;
use std::sync::mpsc;

use crate::postfix::rewrite::{
    resolve_flags, ClientConfig, ResolveClass, ResolveReply, RewriteClient, RewriteRule,
};

/// One question for the resolver thread.
enum Ask {
    /// Resolve these addresses for this sender; answer in order.
    Resolve {
        /// `resolve` or `verify`.
        class: ResolveClass,
        /// The envelope sender.
        sender: Vec<u8>,
        /// Internal-form addresses.
        addresses: Vec<Vec<u8>>,
        /// Where the answers go.
        answer: mpsc::Sender<Vec<ResolveReply>>,
    },
    /// Rewrite one address in the `local` context (redirect targets).
    Rewrite {
        /// Internal-form address.
        address: Vec<u8>,
        /// Where the answer goes.
        answer: mpsc::Sender<Vec<u8>>,
    },
}

/// A handle on the resolver thread; cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    /// The thread's inbox.
    ask: mpsc::Sender<Ask>,
}

impl Resolver {
    /// Starts the thread for the trivial-rewrite service at `socket`
    /// (`<queue_directory>/private/<rewrite_service_name>`).
    pub fn start(socket: &Path, config: ClientConfig) -> std::io::Result<Resolver> {
        let (ask, inbox) = mpsc::channel::<Ask>();
        let socket = socket.to_path_buf();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("resolver".into())
            .spawn(move || {
                let mut client = RewriteClient::new(&socket, config);
                while let Ok(ask) = inbox.recv() {
                    match ask {
                        Ask::Resolve {
                            class,
                            sender,
                            addresses,
                            answer,
                        } => {
                            let replies = runtime.block_on(async {
                                let mut out = Vec::with_capacity(addresses.len());
                                for a in &addresses {
                                    out.push(match client.resolve(class, &sender, a).await {
                                        Ok(r) => r,
                                        Err(_) => resolver_failure(a),
                                    });
                                }
                                out
                            });
                            let _ = answer.send(replies);
                        }
                        Ask::Rewrite { address, answer } => {
                            let out = runtime
                                .block_on(client.rewrite(RewriteRule::Local, &address))
                                .unwrap_or(address);
                            let _ = answer.send(out);
                        }
                    }
                }
            })?;
        Ok(Resolver { ask })
    }

    /// Resolves `addresses` (in order) for `sender`.
    pub fn resolve(
        &self,
        class: ResolveClass,
        sender: &[u8],
        addresses: Vec<Vec<u8>>,
    ) -> Vec<ResolveReply> {
        let (answer, reply) = mpsc::channel();
        let fallback: Vec<ResolveReply> = addresses.iter().map(|a| resolver_failure(a)).collect();
        let sent = self.ask.send(Ask::Resolve {
            class,
            sender: sender.to_vec(),
            addresses,
            answer,
        });
        match sent.ok().and_then(|()| reply.recv().ok()) {
            Some(r) => r,
            None => fallback,
        }
    }

    /// Rewrites a redirect target in the `local` context; on failure the
    /// address is kept as it is.
    pub fn rewrite_local(&self, address: &[u8]) -> Vec<u8> {
        let (answer, reply) = mpsc::channel();
        let sent = self.ask.send(Ask::Rewrite {
            address: address.to_vec(),
            answer,
        });
        sent.ok()
            .and_then(|()| reply.recv().ok())
            .unwrap_or_else(|| address.to_vec())
    }
}

/// The answer Postfix gives an address whose lookup failed: the resolver's
/// FAIL flag, which the store turns into `retry` / `4.3.0`.
fn resolver_failure(address: &[u8]) -> ResolveReply {
    ResolveReply {
        server_flags: 0,
        transport: b"retry".to_vec(),
        nexthop: b"4.3.0 address resolver failure".to_vec(),
        recipient: address.to_vec(),
        flags: resolve_flags::FAIL,
    }
}
