//! The demo catalogue `shopgraph dev` starts with.
//!
//! Ids are UUID v5 of the product name and timestamps are fixed, so seeding
//! on every start inserts each product once and never duplicates it.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::{Product, ProductError};
use crate::store::ProductStore;

/// Namespace of demo product ids.
const DEMO_NAMESPACE: Uuid = Uuid::from_u128(0x5f1e_0c4a_8d1b_4e55_9a70_3c2d_1b0e_7a11);

/// (category, [(name, description, price in cents, stock)])
type Shelf = (
    &'static str,
    &'static [(&'static str, &'static str, i64, i32)],
);

const CATALOGUE: &[Shelf] = &[
    (
        "Coffee",
        &[
            (
                "Ethiopia Yirgacheffe beans 250g",
                "Washed heirloom beans with jasmine and lemon notes.",
                1290,
                120,
            ),
            (
                "Colombia Huila beans 1kg",
                "Balanced, chocolatey, for espresso and filter.",
                3450,
                40,
            ),
            (
                "Decaf Brazil beans 250g",
                "Swiss-water decaf with nutty sweetness.",
                1150,
                35,
            ),
            (
                "Espresso blend 500g",
                "Dark roast blend with crema to spare.",
                1890,
                0,
            ),
            (
                "Cold brew coffee bags (10)",
                "Steep overnight, strain nothing.",
                990,
                75,
            ),
            (
                "Guatemala Antigua beans 250g",
                "Cocoa, spice and a smoky finish.",
                1340,
                18,
            ),
            (
                "Kenya AA beans 250g",
                "Blackcurrant brightness, juicy body.",
                1590,
                7,
            ),
        ],
    ),
    (
        "Tea",
        &[
            (
                "Sencha green tea 100g",
                "Steamed Japanese green tea, grassy and sweet.",
                890,
                60,
            ),
            (
                "Assam breakfast tea 250g",
                "Malty black tea that stands up to milk.",
                750,
                90,
            ),
            ("Earl Grey 100g", "Black tea with bergamot oil.", 690, 0),
            (
                "Chamomile blossoms 50g",
                "Whole flowers for a calm evening cup.",
                590,
                44,
            ),
            (
                "Matcha ceremonial grade 30g",
                "Stone-ground shade-grown tencha.",
                2490,
                12,
            ),
            (
                "Rooibos vanilla 100g",
                "Caffeine-free red bush with vanilla.",
                650,
                30,
            ),
            (
                "Oolong Tie Guan Yin 100g",
                "Floral, lightly roasted oolong.",
                1390,
                15,
            ),
        ],
    ),
    (
        "Kitchen",
        &[
            (
                "Pour-over dripper",
                "Ceramic cone dripper, size 02.",
                2400,
                25,
            ),
            (
                "Gooseneck kettle 1L",
                "Stovetop kettle with a precise spout.",
                3900,
                14,
            ),
            ("Burr grinder", "Conical steel burrs, 40 settings.", 8900, 6),
            (
                "Espresso cup set (4)",
                "Double-walled glass, 80 ml.",
                2800,
                50,
            ),
            (
                "French press 1L",
                "Borosilicate glass and steel frame.",
                3200,
                0,
            ),
            (
                "Digital scale 0.1g",
                "Timer built in, for brewing by weight.",
                2600,
                33,
            ),
            ("Milk frother", "Handheld, USB rechargeable.", 1900, 70),
        ],
    ),
    (
        "Books",
        &[
            (
                "The World Atlas of Coffee",
                "Beans, brewing and origins, illustrated.",
                3500,
                11,
            ),
            (
                "The Book of Tea",
                "Okakura's classic essay on teaism.",
                1200,
                20,
            ),
            (
                "Salt Fat Acid Heat",
                "The four elements of good cooking.",
                3000,
                9,
            ),
            (
                "Designing Data-Intensive Applications",
                "Reliable, scalable, maintainable systems.",
                4800,
                16,
            ),
            (
                "The Rust Programming Language",
                "The official book, second edition.",
                3900,
                22,
            ),
            (
                "Bread Baking Basics",
                "Sourdough and yeasted loaves step by step.",
                2100,
                0,
            ),
            (
                "A Field Guide to Mushrooms",
                "Identify 300 species safely.",
                2700,
                5,
            ),
        ],
    ),
    (
        "Electronics",
        &[
            (
                "Noise-cancelling headphones",
                "Over-ear, 30-hour battery.",
                24900,
                8,
            ),
            (
                "Mechanical keyboard",
                "Hot-swappable switches, tenkeyless.",
                12900,
                12,
            ),
            (
                "USB-C hub 7-in-1",
                "HDMI, SD, three USB-A, power delivery.",
                4900,
                40,
            ),
            (
                "Wireless charger pad",
                "15 W, for phones and earbuds.",
                2900,
                55,
            ),
            ("Portable SSD 1TB", "USB 3.2, 1050 MB/s.", 10900, 3),
            (
                "Smart plug (2 pack)",
                "Schedules and energy monitoring.",
                2500,
                0,
            ),
            (
                "E-reader 6 inch",
                "Glare-free screen, weeks of battery.",
                11900,
                10,
            ),
        ],
    ),
    (
        "Outdoor",
        &[
            (
                "Insulated bottle 750ml",
                "Keeps drinks cold 24 h, hot 12 h.",
                2900,
                65,
            ),
            (
                "Camping stove",
                "Compact gas stove with piezo ignition.",
                4500,
                9,
            ),
            (
                "Trail backpack 28L",
                "Ventilated back, rain cover included.",
                8900,
                13,
            ),
            (
                "Headlamp 400 lumen",
                "Rechargeable, red night mode.",
                3400,
                27,
            ),
            (
                "Hammock with straps",
                "Parachute nylon, packs to fist size.",
                3900,
                0,
            ),
            ("Trekking poles (pair)", "Aluminium, flick locks.", 5900, 6),
            (
                "Picnic blanket",
                "Water-resistant backing, 200x150 cm.",
                2400,
                19,
            ),
        ],
    ),
    (
        "Stationery",
        &[
            (
                "Dotted notebook A5",
                "120 g/m² paper, lay-flat binding.",
                1800,
                80,
            ),
            ("Fountain pen", "Steel nib, converter included.", 3200, 17),
            ("Gel pens (10 colours)", "0.5 mm fine tips.", 990, 100),
            ("Desk planner 2027", "Week on two pages.", 2200, 24),
            ("Washi tape set", "Eight patterned rolls.", 1200, 0),
            ("Brass ruler 30cm", "Etched metric scale.", 1600, 12),
            ("Sticky notes cube", "400 sheets, pastel.", 450, 150),
        ],
    ),
    (
        "Apparel",
        &[
            (
                "Barista apron",
                "Waxed canvas with leather straps.",
                4200,
                10,
            ),
            ("Merino beanie", "Soft, warm, itch-free.", 2900, 21),
            ("Organic cotton tee", "Heavyweight, boxy fit.", 2500, 48),
            ("Rain jacket", "Three-layer waterproof shell.", 15900, 4),
            ("Wool socks (3 pairs)", "Cushioned hiking socks.", 2400, 0),
            (
                "Canvas tote bag",
                "Reinforced handles, inner pocket.",
                1500,
                60,
            ),
            ("Fleece pullover", "Recycled polyester, half zip.", 6900, 11),
        ],
    ),
];

/// The demo products, with stable ids and creation times.
pub fn demo_catalogue(currency: &str) -> Vec<Product> {
    let epoch: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(); // 2026-01-01
    CATALOGUE
        .iter()
        .flat_map(|(category, items)| items.iter().map(move |item| (*category, item)))
        .enumerate()
        .map(|(index, (category, (name, description, cents, stock)))| {
            let created_at = epoch + Duration::hours(index as i64 * 7);
            Product {
                id: Uuid::new_v5(&DEMO_NAMESPACE, name.as_bytes()),
                name: (*name).to_owned(),
                description: Some((*description).to_owned()),
                price: Decimal::new(*cents, 2),
                currency: currency.to_owned(),
                stock_quantity: *stock,
                category: category.to_owned(),
                image_url: None,
                created_at,
                updated_at: created_at,
            }
        })
        .collect()
}

/// Inserts the demo products that are missing; returns how many were new.
pub async fn seed(store: &ProductStore, currency: &str) -> Result<u64, ProductError> {
    store.insert_missing(demo_catalogue(currency)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_is_large_varied_and_stable() {
        let products = demo_catalogue("EUR");
        assert!(products.len() >= 50);
        let categories: HashSet<_> = products.iter().map(|p| p.category.as_str()).collect();
        assert!(categories.len() >= 5);
        let ids: HashSet<_> = products.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), products.len(), "ids are unique");
        assert_eq!(demo_catalogue("EUR"), products, "seeding is deterministic");
        assert!(products.iter().any(|p| p.stock_quantity == 0));
    }
}
