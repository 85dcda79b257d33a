//! A product store on a throw-away database, and what the tests read back.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use product_migration::{Migrator, MigratorTrait};
use product_subgraph::domain::{
    NewProduct, NewProductInput, NewReservation, Product, ReservationInput, ReservationLineInput,
};
use product_subgraph::store::ProductStore;
use rust_decimal::Decimal;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use subgraph_kit::db::Database;
use subgraph_kit::events::CloudEvent;
use subgraph_kit::events::contract::StockData;
use subgraph_kit::events::outbox::{self, RelayWaker};
use subgraph_kit::settings::DatabaseSettings;
use subgraph_kit::testkit::{TempBackend, TempDatabase};
use uuid::Uuid;

/// The payer every test reserves for unless it says otherwise.
pub const PAYER: &str = "alice";

/// A migrated product store on a fresh database.
pub struct Shop {
    pub conn: DatabaseConnection,
    pub store: ProductStore,
    _db: TempDatabase,
}

impl Shop {
    /// A new, empty store on `backend`.
    pub async fn open(backend: TempBackend) -> Self {
        let db = TempDatabase::create(backend).await;
        let settings = DatabaseSettings {
            url: db.url.clone(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        };
        let database = Database::connect(&settings, "product")
            .await
            .expect("the test database opens");
        Migrator::up(&database.conn, None)
            .await
            .expect("migrations apply");
        let store = ProductStore::new(database.conn.clone(), RelayWaker::default(), 5);
        Self {
            conn: database.conn,
            store,
            _db: db,
        }
    }

    /// A product priced `price` EUR with `stock` units.
    pub async fn product(&self, name: &str, price: &str, stock: i32) -> Product {
        let new = NewProduct::parse(
            NewProductInput {
                name: name.into(),
                price: Decimal::from_str(price).expect("a price"),
                stock_quantity: Some(stock),
                category: "Kitchen".into(),
                ..Default::default()
            },
            "EUR",
        )
        .expect("a valid product");
        self.store.create(new).await.expect("product stored")
    }

    /// Units of `product` in stock now.
    pub async fn stock(&self, product: &Product) -> i32 {
        self.store
            .get(product.id)
            .await
            .expect("read")
            .map_or(0, |p| p.stock_quantity)
    }

    /// The stock invariant: stock + units in RESERVED and SOLD reservations
    /// = `initial` (initial stock plus admin adjustments), never negative.
    pub async fn assert_invariant(&self, product: &Product, initial: i64) {
        let stock = i64::from(self.stock(product).await);
        let held = self.store.held_units(product.id).await.expect("held units");
        assert!(stock >= 0, "{} has negative stock {stock}", product.name);
        assert_eq!(
            stock + held.reserved + held.sold,
            initial,
            "{}: stock {stock} + reserved {} + sold {} != {initial}",
            product.name,
            held.reserved,
            held.sold
        );
    }

    /// Every stock event in the outbox, in commit order.
    pub async fn stock_events(&self) -> Vec<(String, StockData)> {
        outbox::entity::Entity::find()
            .order_by_asc(outbox::entity::Column::Seq)
            .all(&self.conn)
            .await
            .expect("outbox")
            .into_iter()
            .map(|row| {
                let event = CloudEvent::from_bytes(row.payload.as_bytes()).expect("an event");
                let data = event.data::<StockData>().expect("stock data");
                (event.kind, data)
            })
            .collect()
    }
}

/// A reservation request for `lines` at the products' current prices,
/// expiring in 25 minutes.
pub fn request(id: Uuid, lines: &[(&Product, i32)]) -> NewReservation {
    request_at(
        id,
        lines,
        Utc::now(),
        Utc::now() + chrono::Duration::minutes(25),
    )
}

/// [`request`] as if made at `now`, expiring at `expires_at`.
pub fn request_at(
    id: Uuid,
    lines: &[(&Product, i32)],
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> NewReservation {
    NewReservation::parse(
        ReservationInput {
            reservation_id: id.to_string(),
            expires_at,
            lines: lines
                .iter()
                .map(|(product, quantity)| ReservationLineInput {
                    product_id: product.id.to_string(),
                    quantity: *quantity,
                    unit_price: product.price,
                    currency: product.currency.clone(),
                    product_name: Some(product.name.clone()),
                })
                .collect(),
        },
        PAYER,
        now,
    )
    .expect("a valid request")
}
