//! A product catalogue: the "sparse" corpus of the benchmark method (one address per twenty
//! product records). Each record is what a shop's API returns for a product: id, SKU, slug,
//! name, brand, description, category path, price, stock, rating, tags, dimensions, image URLs
//! and a timestamp; every twentieth carries a review with its author's email address, and no
//! other record holds personal data.

use serde_json::{Value, json};

use super::values::{self, Rng};

const MATERIALS: [&str; 10] = [
    "Ceramic", "Steel", "Oak", "Linen", "Cotton", "Glass", "Bamboo", "Leather", "Wool", "Copper",
];
const THINGS: [&str; 12] = [
    "mug", "lamp", "chair", "towel", "bottle", "desk", "shelf", "bag", "blanket", "kettle", "pan",
    "vase",
];
const COLOURS: [&str; 8] = [
    "blue", "green", "black", "white", "grey", "red", "sand", "olive",
];
const BRANDS: [&str; 6] = [
    "Hearth & Mill",
    "Nordvik",
    "Casa Lume",
    "Fjell",
    "Atelier Sud",
    "Ostrava Works",
];
const CATEGORIES: [[&str; 2]; 5] = [
    ["Home", "Kitchen"],
    ["Home", "Living room"],
    ["Office", "Furniture"],
    ["Outdoor", "Travel"],
    ["Home", "Bathroom"],
];
const TAGS: [&str; 13] = [
    "durable",
    "soft",
    "handmade",
    "recycled",
    "compact",
    "stackable",
    "washable",
    "lightweight",
    "classic",
    "modern",
    "gift",
    "eco",
    "premium",
];
const DESCRIPTIONS: [&str; 6] = [
    "Stoneware with a reactive glaze. Dishwasher and microwave safe.",
    "Solid wood frame, oiled finish, assembled in under ten minutes.",
    "Double-walled, keeps drinks cold for 24 hours and hot for 12.",
    "Made from recycled fibres; machine washable at 40 degrees.",
    "Adjustable arm and warm white light, energy class A.",
    "Fits a 15-inch laptop, water-repellent outer shell.",
];
const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];
const GIVEN: [&str; 6] = ["maya", "jan", "ana", "li", "omar", "ines"];
const FAMILY: [&str; 5] = ["berg", "silva", "ito", "novak", "keller"];

/// One product record; `review` adds a review whose author is named by email address.
fn product(r: &mut Rng, n: u64, review: bool) -> Value {
    let id = 1_000_000 + n * 37;
    let (material, thing, colour) = (*r.pick(&MATERIALS), *r.pick(&THINGS), *r.pick(&COLOURS));
    let upper = |s: &str, k: usize| s[..k].to_ascii_uppercase();
    let mut tags: Vec<&str> = Vec::new();
    while tags.len() < 3 {
        let t = *r.pick(&TAGS);
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let images: Vec<String> = (1..=r.range(1, 3))
        .map(|k| format!("https://cdn.example.com/p/{id}/{k}.jpg"))
        .collect();
    let mut p = json!({
        "id": id,
        "sku": format!("{}-{:05}-{}", upper(material, 2), id % 100_000, upper(colour, 3)),
        "slug": format!("{}-{thing}-{colour}", material.to_ascii_lowercase()),
        "name": format!("{material} {thing}, {colour}"),
        "brand": r.pick(&BRANDS),
        "description": r.pick(&DESCRIPTIONS),
        "category": r.pick(&CATEGORIES),
        "price": {
            "amount": r.range(500, 40_000) as f64 / 100.0,
            "currency": r.pick(&CURRENCIES),
        },
        "in_stock": r.chance(80),
        "stock": r.range(0, 900),
        "rating": r.range(25, 50) as f64 / 10.0,
        "review_count": r.range(0, 4000),
        "tags": tags,
        "dimensions": {
            "width_mm": r.range(50, 900),
            "height_mm": r.range(50, 900),
            "depth_mm": r.range(20, 600),
            "weight_g": r.range(80, 20_000),
        },
        "images": images,
        "created_at": values::timestamp(r),
    });
    if review && let Some(o) = p.as_object_mut() {
        o.insert(
            "review".into(),
            json!({
                "rating": r.range(1, 5),
                "text": "Exactly as described.",
                "author_email": format!(
                    "{}.{}{}@mail.example.org",
                    r.pick(&GIVEN),
                    r.pick(&FAMILY),
                    r.range(1, 99)
                ),
            }),
        );
    }
    p
}

/// A JSON array of product records of at least `size` bytes, from `seed`, and how many email
/// addresses it holds (one per twenty records).
pub fn catalogue(seed: u64, size: usize) -> (Vec<u8>, usize) {
    let mut r = Rng::new(seed);
    let mut doc = b"[".to_vec();
    let mut n = 0u64;
    let mut addresses = 0;
    while doc.len() < size {
        if n > 0 {
            doc.push(b',');
        }
        let review = n % 20 == 19;
        addresses += usize::from(review);
        // A `Value` always serialises.
        doc.extend_from_slice(product(&mut r, n, review).to_string().as_bytes());
        n += 1;
    }
    doc.push(b']');
    (doc, addresses)
}
