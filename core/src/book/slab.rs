//! Resting orders in one pre-sized slab shared by every market: O(1) insert and
//! remove, no allocation per order once warm, `OrderId` → slot in a hash map, each
//! account's orders chained through the slab (for cancel-all and the open-order
//! count), and client order ids indexed for uniqueness.

use std::num::NonZeroU32;

use rustc_hash::FxHashMap;

use super::types::{ClientOrderId, MarketId, OrderId, Price, Qty, SelfTradePrevention, Side};

/// A slot in the slab (stored as index + 1, so `Option<Slot>` costs nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Slot(NonZeroU32);

impl Slot {
    fn from_index(index: usize) -> Self {
        let value = u32::try_from(index + 1).expect("slab bounded by ORDERS_OPEN_MAX");
        Self(NonZeroU32::new(value).expect("index + 1 is never zero"))
    }
    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// One resting order. 80 bytes; the links make it a member of its price level's FIFO
/// and of its account's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderNode {
    pub(crate) client_order_id: Option<ClientOrderId>,
    pub(crate) id: OrderId,
    pub(crate) price: Price,
    pub(crate) remaining: Qty,
    /// Funds the engine reserves for this order (quote for a buy, base for a sell).
    pub(crate) held: u64,
    pub(crate) account: u32,
    pub(crate) market: MarketId,
    pub(crate) prev: Option<Slot>,
    pub(crate) next: Option<Slot>,
    pub(crate) account_prev: Option<Slot>,
    pub(crate) account_next: Option<Slot>,
    pub(crate) maker_bps: u16,
    pub(crate) taker_bps: u16,
    pub(crate) side: Side,
    pub(crate) stp: SelfTradePrevention,
    pub(crate) post_only: bool,
}

impl OrderNode {
    pub fn id(&self) -> OrderId {
        self.id
    }
    pub fn client_order_id(&self) -> Option<ClientOrderId> {
        self.client_order_id
    }
    pub fn price(&self) -> Price {
        self.price
    }
    pub fn remaining(&self) -> Qty {
        self.remaining
    }
    pub fn held(&self) -> u64 {
        self.held
    }
    pub fn account(&self) -> u32 {
        self.account
    }
    pub fn market(&self) -> MarketId {
        self.market
    }
    pub fn side(&self) -> Side {
        self.side
    }
    pub fn maker_bps(&self) -> u16 {
        self.maker_bps
    }
    pub fn taker_bps(&self) -> u16 {
        self.taker_bps
    }
    pub fn stp(&self) -> SelfTradePrevention {
        self.stp
    }
    pub fn post_only(&self) -> bool {
        self.post_only
    }
}

/// The fields of a new order; links are the slab's business.
#[derive(Clone, Copy, Debug)]
pub struct NewOrder {
    pub id: OrderId,
    pub client_order_id: Option<ClientOrderId>,
    pub account: u32,
    pub market: MarketId,
    pub side: Side,
    pub price: Price,
    pub remaining: Qty,
    pub held: u64,
    pub maker_bps: u16,
    pub taker_bps: u16,
    pub stp: SelfTradePrevention,
    pub post_only: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct AccountChain {
    head: Option<Slot>,
    count: u32,
}

#[derive(Clone, Debug, Default)]
pub struct OrderSlab {
    nodes: Vec<OrderNode>,
    free: Vec<Slot>,
    by_id: FxHashMap<OrderId, Slot>,
    by_client_id: FxHashMap<(u32, ClientOrderId), Slot>,
    accounts: Vec<AccountChain>,
}

impl OrderSlab {
    pub fn with_capacity(orders: usize) -> Self {
        Self {
            nodes: Vec::with_capacity(orders),
            free: Vec::with_capacity(orders),
            by_id: FxHashMap::with_capacity_and_hasher(orders, rustc_hash::FxBuildHasher),
            by_client_id: FxHashMap::default(),
            accounts: Vec::new(),
        }
    }

    /// Orders resting now.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn find(&self, id: OrderId) -> Option<Slot> {
        self.by_id.get(&id).copied()
    }

    pub fn find_client(&self, account: u32, client_order_id: ClientOrderId) -> Option<Slot> {
        self.by_client_id.get(&(account, client_order_id)).copied()
    }

    pub fn get(&self, slot: Slot) -> &OrderNode {
        &self.nodes[slot.index()]
    }

    pub fn get_mut(&mut self, slot: Slot) -> &mut OrderNode {
        &mut self.nodes[slot.index()]
    }

    /// The order after `slot` in its level's FIFO.
    pub fn next_in_level(&self, slot: Slot) -> Option<Slot> {
        self.nodes[slot.index()].next
    }

    /// Orders `account` has resting, across every market.
    pub fn open_count(&self, account: u32) -> u32 {
        self.accounts.get(account as usize).map_or(0, |chain| chain.count)
    }

    /// Stores a new order, unlinked from any level.
    pub fn insert(&mut self, order: &NewOrder) -> Slot {
        let account_index = order.account as usize;
        if self.accounts.len() <= account_index {
            self.accounts.resize(account_index + 1, AccountChain::default());
        }
        let chain = self.accounts[account_index];
        let node = OrderNode {
            client_order_id: order.client_order_id,
            id: order.id,
            price: order.price,
            remaining: order.remaining,
            held: order.held,
            account: order.account,
            market: order.market,
            prev: None,
            next: None,
            account_prev: None,
            account_next: chain.head,
            maker_bps: order.maker_bps,
            taker_bps: order.taker_bps,
            side: order.side,
            stp: order.stp,
            post_only: order.post_only,
        };
        let slot = if let Some(slot) = self.free.pop() {
            self.nodes[slot.index()] = node;
            slot
        } else {
            self.nodes.push(node);
            Slot::from_index(self.nodes.len() - 1)
        };
        if let Some(head) = chain.head {
            self.nodes[head.index()].account_prev = Some(slot);
        }
        self.accounts[account_index] = AccountChain { head: Some(slot), count: chain.count + 1 };
        let previous = self.by_id.insert(order.id, slot);
        assert!(previous.is_none(), "order ids are unique");
        if let Some(client_order_id) = order.client_order_id {
            let previous = self.by_client_id.insert((order.account, client_order_id), slot);
            assert!(previous.is_none(), "client order ids are unique per account");
        }
        slot
    }

    /// Forgets an order the book has already unlinked from its level.
    pub fn remove(&mut self, slot: Slot) -> OrderNode {
        let node = self.nodes[slot.index()];
        match node.account_prev {
            Some(prev) => self.nodes[prev.index()].account_next = node.account_next,
            None => self.accounts[node.account as usize].head = node.account_next,
        }
        if let Some(next) = node.account_next {
            self.nodes[next.index()].account_prev = node.account_prev;
        }
        self.accounts[node.account as usize].count -= 1;
        let removed = self.by_id.remove(&node.id);
        assert_eq!(removed, Some(slot), "order id map agrees with the slab");
        if let Some(client_order_id) = node.client_order_id {
            let removed = self.by_client_id.remove(&(node.account, client_order_id));
            assert_eq!(removed, Some(slot), "client order id map agrees with the slab");
        }
        self.free.push(slot);
        node
    }

    /// The account's resting orders, newest first.
    pub fn account_orders(&self, account: u32) -> impl Iterator<Item = Slot> + '_ {
        let head = self.accounts.get(account as usize).and_then(|chain| chain.head);
        std::iter::successors(head, |&slot| self.nodes[slot.index()].account_next)
    }

    /// Every resting order, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &OrderNode)> {
        self.by_id.values().map(|&slot| (slot, &self.nodes[slot.index()]))
    }

    /// Bytes the slab and its indexes have reserved (for the memory-per-order figure).
    pub fn reserved_bytes(&self) -> usize {
        let entry = |key: usize, value: usize| key + value + 1;
        self.nodes.capacity() * std::mem::size_of::<OrderNode>()
            + self.free.capacity() * std::mem::size_of::<Slot>()
            + self.by_id.capacity() * entry(std::mem::size_of::<OrderId>(), std::mem::size_of::<Slot>())
            + self.by_client_id.capacity() * entry(32, std::mem::size_of::<Slot>())
            + self.accounts.capacity() * std::mem::size_of::<AccountChain>()
    }

    pub fn check_invariants(&self) {
        let mut counted = vec![0_u32; self.accounts.len()];
        for (&id, &slot) in &self.by_id {
            let node = &self.nodes[slot.index()];
            assert_eq!(node.id, id, "id map points at its order");
            assert!(!node.remaining.is_zero(), "order {id} rests with nothing left");
            counted[node.account as usize] += 1;
            if let Some(client_order_id) = node.client_order_id {
                assert_eq!(self.by_client_id.get(&(node.account, client_order_id)), Some(&slot));
            }
        }
        assert_eq!(self.by_client_id.len(), self.iter().filter(|(_, node)| node.client_order_id.is_some()).count());
        for (account, chain) in self.accounts.iter().enumerate() {
            assert_eq!(chain.count, counted[account], "account {account} chain count");
            let walked = self.account_orders(account as u32).count();
            assert_eq!(walked, chain.count as usize, "account {account} chain length");
        }
        assert_eq!(self.nodes.len(), self.by_id.len() + self.free.len(), "every slot is live or free");
    }
}
