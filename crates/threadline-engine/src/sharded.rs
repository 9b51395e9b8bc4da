//! State partitioned by process across shards (ADR 004). [`Router`] decides which shard
//! owns each span; [`Shards`] applies its decisions to a set of engines one call at a time.
//! The server runs the same protocol with one thread per shard.

use std::collections::VecDeque;
use std::hash::BuildHasher as _;

use threadline_core::id::TraceId;
use threadline_core::span::Span;

use crate::config::EngineConfig;
use crate::engine::{Engine, RemoteConsume};
use crate::event::Event;
use crate::messaging::{self, Role};
use threadline_core::hash::HashMap;

/// Traces pinned to a shard other than their hash's, at most; the oldest pins are forgotten
/// past it (a forgotten trace routes by hash again, which only matters for its late spans).
const MAX_PINS: usize = 1 << 20;

/// Where a span goes, and what else the shards must do for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub shard: usize,
    /// The span's trace moved here from this shard: its state there must follow.
    pub migrate_from: Option<usize>,
    /// Consumptions of messages owned by other shards: (shard, consumption).
    pub remote: Vec<(usize, RemoteConsume)>,
}

#[derive(Debug)]
pub struct Router {
    shards: usize,
    pins: HashMap<TraceId, usize>,
    order: VecDeque<TraceId>,
}

impl Router {
    pub fn new(shards: usize) -> Self {
        Self { shards: shards.max(1), pins: HashMap::default(), order: VecDeque::new() }
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The shard owning a trace.
    pub fn shard_of(&self, trace_id: TraceId) -> usize {
        if let Some(shard) = self.pins.get(&trace_id) {
            return *shard;
        }
        let hash = foldhash::fast::FixedState::with_seed(0x0073_6861_7264).hash_one(trace_id);
        usize::try_from(hash % self.shards as u64).unwrap_or(0)
    }

    /// Routes one span: a span whose cross-trace links all name one trace goes to that
    /// trace's shard and pins its own trace there.
    pub fn route(&mut self, span: &Span) -> Route {
        let own = self.shard_of(span.trace_id);
        let mut linked: Vec<TraceId> =
            span.links.iter().map(|l| l.trace_id).filter(|t| *t != span.trace_id).collect();
        linked.sort_unstable();
        linked.dedup();
        let (shard, migrate_from) = match linked.as_slice() {
            [single] => {
                let target = self.shard_of(*single);
                if target == own {
                    (own, None)
                } else {
                    self.pin(span.trace_id, target);
                    (target, Some(own))
                }
            }
            _ => (own, None),
        };
        let mut remote = Vec::new();
        if let Role::Consumer { channel, group } = messaging::role(span) {
            for link in &span.links {
                let owner = self.shard_of(link.trace_id);
                if owner != shard {
                    remote.push((
                        owner,
                        RemoteConsume {
                            trace_id: link.trace_id,
                            message: link.span_id,
                            system: channel.system.to_owned(),
                            destination: channel.destination.to_owned(),
                            group: group.to_owned(),
                            consumer_start: span.start_time_unix_nano,
                        },
                    ));
                }
            }
        }
        Route { shard, migrate_from, remote }
    }

    fn pin(&mut self, trace_id: TraceId, shard: usize) {
        if self.pins.insert(trace_id, shard).is_none() {
            self.order.push_back(trace_id);
            if self.order.len() > MAX_PINS
                && let Some(oldest) = self.order.pop_front()
            {
                self.pins.remove(&oldest);
            }
        }
    }
}

/// Several engine shards behind a router, driven one call at a time.
#[derive(Debug)]
pub struct Shards {
    router: Router,
    engines: Vec<Engine>,
}

impl Shards {
    pub fn new(shards: usize, config: &EngineConfig) -> Self {
        let router = Router::new(shards);
        let engines = (0..router.shards()).map(|_| Engine::new(config.clone())).collect();
        Self { router, engines }
    }

    pub fn engines(&self) -> &[Engine] {
        &self.engines
    }

    pub fn engines_mut(&mut self) -> &mut [Engine] {
        &mut self.engines
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn ingest(&mut self, span: &Span, now: u64) {
        let route = self.router.route(span);
        if let Some(from) = route.migrate_from
            && let Some(exported) = self.engines[from].export_trace(span.trace_id)
        {
            self.engines[route.shard].import(exported, now);
        }
        let router = &self.router;
        let shard = route.shard;
        self.engines[shard].ingest_with(span, now, &|t| router.shard_of(t) != shard);
        for (owner, consume) in &route.remote {
            self.engines[*owner].consume_remote(consume, now);
        }
        self.share_learned();
    }

    pub fn advance(&mut self, now: u64) {
        for engine in &mut self.engines {
            engine.advance(now);
        }
    }

    /// Events of every shard since the last call.
    pub fn drain_events(&mut self) -> Vec<Event> {
        self.engines.iter_mut().flat_map(Engine::drain_events).collect()
    }

    /// Tells every shard the subscribers any shard learned.
    fn share_learned(&mut self) {
        let learned: Vec<(String, String, String)> =
            self.engines.iter_mut().flat_map(Engine::drain_learned).collect();
        for (system, destination, group) in &learned {
            for engine in &mut self.engines {
                engine.declare_subscribers(system, destination, &[group.as_str()]);
            }
        }
        for engine in &mut self.engines {
            engine.drain_learned();
        }
    }
}
