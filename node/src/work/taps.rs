//! Taps: one consumer per external kind on this node, taking as many deliveries of the kind
//! as the workers connected here have slots for it (none while no worker is here), so its
//! tasks wait in RabbitMQ for whichever node has a free worker.

use crate::actors::consumer::{SetPrefetch, TaskConsumer};
use actix::Addr;
use std::collections::HashMap;

/// Makes the consumer of an external kind with a prefetch.
pub type MakeTap = Box<dyn Fn(&str, u16) -> Addr<TaskConsumer> + Send>;

#[derive(Default)]
pub struct Taps {
    pub(super) make: Option<MakeTap>,
    taps: HashMap<String, (Addr<TaskConsumer>, u16)>,
}

impl Taps {
    /// Take up to `slots` deliveries of `kind` at once.
    pub fn set(&mut self, kind: &str, slots: u32) {
        let prefetch = slots.min(u32::from(u16::MAX)) as u16;
        match self.taps.get_mut(kind) {
            Some((tap, now)) if *now != prefetch => {
                tap.do_send(SetPrefetch(prefetch));
                *now = prefetch;
            }
            Some(_) => {}
            None if prefetch > 0 => {
                if let Some(make) = &self.make {
                    self.taps
                        .insert(kind.to_string(), (make(kind, prefetch), prefetch));
                }
            }
            None => {}
        }
    }
}
