//! The storm: concurrent shoppers and an admin, through the routers.
//!
//! Each shopper is a signed-in user with a basket of their own, who
//! browses, fills the basket (sometimes with one of the scarce products
//! every shopper wants), and pays in one of four ways — checkout with a
//! good, a declined or a failing card; a pending payment then processed;
//! a pending payment then cancelled; a pending payment abandoned to
//! expiry. Like a real app, a shopper who gets no usable answer asks
//! again with the **same** idempotency key (through the other router,
//! likely), and one who is refused acts on the refusal. The admin
//! refunds, partly or wholly, payments shoppers saw completed.
//!
//! Everything a client was told is kept in [`Records`], for the
//! invariant checker to hold the stores to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{Answer, Api};
use crate::token;

const BASKET: &str = "{ myBasket { checkoutInProgress items { product { id } quantity } } }";
const BROWSE: &str = "{ products(first: 10) { edges { node { id stockQuantity inStock } } } }";
const ADD: &str =
    "mutation($p: ID!, $q: Int!) { addBasketItem(productId: $p, quantity: $q) { itemCount } }";
const REMOVE: &str = "mutation($p: ID!) { removeBasketItem(productId: $p) { itemCount } }";
const CHECKOUT: &str = "mutation($input: CheckoutInput!) { checkout(input: $input) { id status } }";
const CREATE: &str =
    "mutation($input: CreatePaymentInput!) { createPayment(input: $input) { id status } }";
const PROCESS: &str =
    "mutation($id: ID!, $card: CardInput) { processPayment(id: $id, card: $card) { id status } }";
const CANCEL: &str = "mutation($id: ID!) { cancelPayment(id: $id) { id status } }";
const REFUND: &str = "mutation($id: ID!, $amount: Decimal) { refundPayment(id: $id, amount: $amount) { id status } }";
const CREATE_PRODUCT: &str =
    "mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }";

/// The SPEC's test cards.
const CARD_GOOD: &str = "4242424242424242";
const CARD_DECLINED: &str = "4000000000000002";
const CARD_PROVIDER_ERROR: &str = "4000000000000119";

/// How many times a client asks again after an unusable answer.
const ATTEMPTS: usize = 30;

/// A product of the run's catalogue and the stock it started with.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub initial_stock: i64,
    pub scarce: bool,
}

/// How a shopper pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `checkout` with a card.
    Checkout(Card),
    /// `createPayment`, then `processPayment` with a good card.
    CreateThenProcess,
    /// `createPayment`, then `cancelPayment`.
    CreateThenCancel,
    /// `createPayment`, then nothing: it expires.
    CreateThenAbandon,
}

/// Which test card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    Good,
    Declined,
    ProviderError,
}

impl Card {
    fn number(self) -> &'static str {
        match self {
            Self::Good => CARD_GOOD,
            Self::Declined => CARD_DECLINED,
            Self::ProviderError => CARD_PROVIDER_ERROR,
        }
    }
}

/// What a client was finally told about one payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Told {
    /// A payment, with the status in the last answer.
    Payment { id: String, status: String },
    /// A refusal, by code.
    Refused(String),
    /// No usable answer after every attempt.
    Unresolved,
}

/// One payment attempt of one shopper.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub user: String,
    pub key: String,
    pub flow: Flow,
    pub told: Told,
    /// Requests it took.
    pub requests: usize,
}

/// Everything clients were told.
#[derive(Debug, Default)]
pub struct Records {
    pub attempts: Vec<Attempt>,
    /// What the admin was told of each refund it asked for.
    pub refunds: Vec<Told>,
    /// Requests sent, and how many got no usable answer.
    pub requests: usize,
    pub unavailable: usize,
    /// Unusable answers by their first words (error code or transport).
    pub unavailable_kinds: BTreeMap<String, usize>,
}

impl Records {
    /// Payments clients were told COMPLETED: `(id, user, key)`.
    pub fn seen_completed(&self) -> Vec<(&str, &str, &str)> {
        self.attempts
            .iter()
            .filter_map(|a| match &a.told {
                Told::Payment { id, status } if status == "COMPLETED" => {
                    Some((id.as_str(), a.user.as_str(), a.key.as_str()))
                }
                _ => None,
            })
            .collect()
    }
}

/// The storm's shape.
#[derive(Debug, Clone, Copy)]
pub struct StormShape {
    pub shoppers: usize,
    pub seed: u64,
}

/// A running storm.
pub struct Storm {
    stop: Arc<AtomicBool>,
    /// Checkouts being answered right now (the fault schedule kills a
    /// payment replica while there are some).
    pub in_flight: Arc<AtomicUsize>,
    records: Arc<Mutex<Records>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Creates the run's catalogue: two scarce products every shopper wants
/// and six plentiful ones.
pub async fn create_catalogue(api: &Api) -> Vec<Item> {
    let admin = token("admin-chaos", true);
    let mut items = Vec::new();
    for n in 0..8 {
        let scarce = n < 2;
        let stock: i64 = if scarce { 12 } else { 5000 };
        let input = json!({
            "name": format!("Chaos item {n}"),
            "price": format!("{}.{:02}", 3 + n, 25 * (n % 4)),
            "stockQuantity": stock,
            "category": "chaos",
        });
        let mut id = None;
        for _ in 0..ATTEMPTS {
            match api
                .call(&admin, CREATE_PRODUCT, json!({ "input": input }))
                .await
            {
                Answer::Data(data) => {
                    id = data["createProduct"]["id"].as_str().map(str::to_owned);
                    break;
                }
                other => {
                    eprintln!("createProduct: {other:?}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
        items.push(Item {
            id: id.expect("the catalogue is created before the faults start"),
            initial_stock: stock,
            scarce,
        });
    }
    items
}

impl Storm {
    /// Starts `shape.shoppers` shoppers and the admin.
    pub fn start(api: Arc<Api>, catalogue: Arc<Vec<Item>>, shape: StormShape) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let records = Arc::new(Mutex::new(Records::default()));
        let mut tasks = Vec::new();
        for n in 0..shape.shoppers {
            let shopper = Shopper {
                user: format!("chaos-shopper-{n}"),
                api: api.clone(),
                catalogue: catalogue.clone(),
                records: records.clone(),
                in_flight: in_flight.clone(),
                rng: fastrand::Rng::with_seed(shape.seed.wrapping_add(n as u64)),
                payments: 0,
            };
            tasks.push(tokio::spawn(shopper.run(stop.clone())));
        }
        tasks.push(tokio::spawn(run_admin(
            api,
            records.clone(),
            stop.clone(),
            fastrand::Rng::with_seed(shape.seed.wrapping_sub(1)),
        )));
        Self {
            stop,
            in_flight,
            records,
            tasks,
        }
    }

    /// Tells everyone to finish what they are doing, waits, and returns
    /// what they were told.
    pub async fn finish(self) -> Records {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a storm task ends without panicking");
        }
        let mut records = self.records.lock().expect("records");
        std::mem::take(&mut records)
    }

    /// How many payment attempts have been told something so far.
    pub fn attempts_so_far(&self) -> usize {
        self.records.lock().expect("records").attempts.len()
    }
}

/// Sends one request and books it in `records`.
async fn call(
    records: &Mutex<Records>,
    api: &Api,
    token: &str,
    query: &str,
    variables: Value,
) -> Answer {
    let answer = api.call(token, query, variables).await;
    let mut records = records.lock().expect("records");
    records.requests += 1;
    if let Answer::Unavailable(why) = &answer {
        records.unavailable += 1;
        let kind: String = why
            .split([':', ' '])
            .find(|w| !w.is_empty() && !w.starts_with("http"))
            .unwrap_or("?")
            .to_owned();
        *records.unavailable_kinds.entry(kind).or_default() += 1;
    }
    answer
}

/// A pause before asking again: 100 ms, doubling, at most 2 s.
fn backoff(attempt: usize) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2000))
}

struct Shopper {
    user: String,
    api: Arc<Api>,
    catalogue: Arc<Vec<Item>>,
    records: Arc<Mutex<Records>>,
    in_flight: Arc<AtomicUsize>,
    rng: fastrand::Rng,
    payments: usize,
}

impl Shopper {
    async fn run(mut self, stop: Arc<AtomicBool>) {
        let token = token(&self.user, false);
        while !stop.load(Ordering::SeqCst) {
            if self.rng.u8(0..10) < 3 {
                self.call(&token, BROWSE, json!({})).await;
            }
            let basket = match self.call(&token, BASKET, json!({})).await {
                Answer::Data(data) => data["myBasket"].clone(),
                _ => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if basket["checkoutInProgress"] == true {
                // A checkout of ours is settling (its event not yet
                // through), or lapsing after a crash: wait for it.
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            if basket["items"].as_array().is_none_or(Vec::is_empty) {
                self.fill_basket(&token).await;
                continue;
            }
            self.pay(&token).await;
        }
    }

    async fn call(&self, token: &str, query: &str, variables: Value) -> Answer {
        call(&self.records, &self.api, token, query, variables).await
    }

    /// One or two lines, one to three units each; a scarce product now
    /// and then.
    async fn fill_basket(&mut self, token: &str) {
        let lines = self.rng.usize(1..=2);
        for _ in 0..lines {
            let item = if self.rng.u8(0..10) < 3 {
                self.catalogue
                    .iter()
                    .filter(|i| i.scarce)
                    .nth(self.rng.usize(0..2))
            } else {
                let plentiful: Vec<&Item> = self.catalogue.iter().filter(|i| !i.scarce).collect();
                plentiful.get(self.rng.usize(0..plentiful.len())).copied()
            };
            let Some(item) = item else { continue };
            let quantity = self.rng.i64(1..=3);
            // Adding is not idempotent: an unusable answer is not
            // repeated (the basket is read again before paying).
            self.call(token, ADD, json!({ "p": item.id, "q": quantity }))
                .await;
        }
    }

    async fn pay(&mut self, token: &str) {
        self.payments += 1;
        let key = format!("{}-{}", self.user, self.payments);
        let flow = match self.rng.u8(0..100) {
            0..50 => Flow::Checkout(Card::Good),
            50..60 => Flow::Checkout(Card::Declined),
            60..70 => Flow::Checkout(Card::ProviderError),
            70..82 => Flow::CreateThenProcess,
            82..95 => Flow::CreateThenCancel,
            _ => Flow::CreateThenAbandon,
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let mut requests = 0;
        let told = match flow {
            Flow::Checkout(card) => {
                let input = json!({
                    "idempotencyKey": key,
                    "method": "CARD",
                    "card": card_input(card),
                });
                self.until_answered(
                    token,
                    CHECKOUT,
                    json!({ "input": input }),
                    "checkout",
                    &mut requests,
                )
                .await
            }
            Flow::CreateThenProcess | Flow::CreateThenCancel | Flow::CreateThenAbandon => {
                let input = json!({ "idempotencyKey": key, "method": "CARD" });
                let created = self
                    .until_answered(
                        token,
                        CREATE,
                        json!({ "input": input }),
                        "createPayment",
                        &mut requests,
                    )
                    .await;
                match (&created, flow) {
                    (Told::Payment { id, status }, Flow::CreateThenProcess)
                        if status == "PENDING" =>
                    {
                        let variables = json!({ "id": id, "card": card_input(Card::Good) });
                        self.until_answered(
                            token,
                            PROCESS,
                            variables,
                            "processPayment",
                            &mut requests,
                        )
                        .await
                    }
                    (Told::Payment { id, status }, Flow::CreateThenCancel)
                        if status == "PENDING" =>
                    {
                        self.until_answered(
                            token,
                            CANCEL,
                            json!({ "id": id }),
                            "cancelPayment",
                            &mut requests,
                        )
                        .await
                    }
                    _ => created,
                }
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Told::Refused(code) = &told
            && code == "CONFLICT"
        {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.records
            .lock()
            .expect("records")
            .attempts
            .push(Attempt {
                user: self.user.clone(),
                key,
                flow,
                told,
                requests,
            });
    }

    /// Sends the same request until it is answered (a payment or a
    /// refusal); an `OUT_OF_STOCK` refusal empties the lines it names.
    async fn until_answered(
        &self,
        token: &str,
        query: &str,
        variables: Value,
        field: &str,
        requests: &mut usize,
    ) -> Told {
        for attempt in 0..ATTEMPTS {
            *requests += 1;
            match self.call(token, query, variables.clone()).await {
                Answer::Data(data) => {
                    let payment = &data[field];
                    return Told::Payment {
                        id: payment["id"].as_str().unwrap_or_default().to_owned(),
                        status: payment["status"].as_str().unwrap_or_default().to_owned(),
                    };
                }
                Answer::Refused { code, error, .. } => {
                    if code == "OUT_OF_STOCK" || code == "PRODUCT_UNAVAILABLE" {
                        for line in error["extensions"]["lines"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            if let Some(product) = line["productId"].as_str() {
                                self.call(token, REMOVE, json!({ "p": product })).await;
                            }
                        }
                    }
                    return Told::Refused(code);
                }
                Answer::Unavailable(_) => tokio::time::sleep(backoff(attempt)).await,
            }
        }
        Told::Unresolved
    }
}

fn card_input(card: Card) -> Value {
    json!({ "number": card.number(), "expMonth": 12, "expYear": 2040, "cvc": "123" })
}

/// The admin: every second or so, refunds part or all of a payment a
/// shopper saw completed.
async fn run_admin(
    api: Arc<Api>,
    records: Arc<Mutex<Records>>,
    stop: Arc<AtomicBool>,
    mut rng: fastrand::Rng,
) {
    let admin = token("admin-chaos", true);
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(rng.u64(600..1400))).await;
        let target = {
            let records = records.lock().expect("records");
            let completed = records.seen_completed();
            (!completed.is_empty()).then(|| completed[rng.usize(0..completed.len())].0.to_owned())
        };
        let Some(payment_id) = target else { continue };
        let amount = match rng.u8(0..10) {
            0..5 => Some("0.50".to_owned()),
            5..8 => Some("1.00".to_owned()),
            _ => None,
        };
        let variables = json!({ "id": &payment_id, "amount": amount });
        let mut told = Told::Unresolved;
        // A refund whose answer was lost is not asked again: asking again
        // is a second refund. Only a refused connection (nothing sent)
        // would be safe to repeat, and the client cannot tell.
        match call(&records, &api, &admin, REFUND, variables).await {
            Answer::Data(data) => {
                told = Told::Payment {
                    id: payment_id,
                    status: data["refundPayment"]["status"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
            }
            Answer::Refused { code, .. } => told = Told::Refused(code),
            Answer::Unavailable(_) => {}
        }
        records.lock().expect("records").refunds.push(told);
    }
}
