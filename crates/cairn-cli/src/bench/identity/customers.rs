//! Generated customers for the scale run: people appear in up to three sources (crm, shop,
//! marketing) with realistic noise — typos, nicknames, transposed birth dates, missing fields,
//! formatting differences in emails and phones — households sharing an address and a landline, and
//! a shop phone many customers give (a hub). Seeded: the same count gives the same records.

use cairn_identity::{BirthDate, CanonicalRecord, PostalAddress};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const FIRST_NAMES: &[&str] = &[
    "william",
    "robert",
    "margaret",
    "elizabeth",
    "james",
    "john",
    "michael",
    "david",
    "richard",
    "joseph",
    "thomas",
    "charles",
    "christopher",
    "daniel",
    "matthew",
    "anthony",
    "mark",
    "donald",
    "steven",
    "paul",
    "andrew",
    "joshua",
    "kenneth",
    "kevin",
    "brian",
    "george",
    "timothy",
    "ronald",
    "edward",
    "jason",
    "jeffrey",
    "ryan",
    "jacob",
    "gary",
    "nicholas",
    "eric",
    "jonathan",
    "stephen",
    "larry",
    "justin",
    "scott",
    "brandon",
    "benjamin",
    "samuel",
    "gregory",
    "alexander",
    "frank",
    "patrick",
    "raymond",
    "jack",
    "dennis",
    "jerry",
    "tyler",
    "aaron",
    "jose",
    "adam",
    "nathan",
    "henry",
    "douglas",
    "zachary",
    "peter",
    "kyle",
    "mary",
    "patricia",
    "jennifer",
    "linda",
    "barbara",
    "susan",
    "jessica",
    "sarah",
    "karen",
    "nancy",
    "lisa",
    "betty",
    "sandra",
    "ashley",
    "kimberly",
    "emily",
    "donna",
    "michelle",
    "carol",
    "amanda",
    "dorothy",
    "melissa",
    "deborah",
    "stephanie",
    "rebecca",
    "sharon",
    "laura",
    "cynthia",
    "kathleen",
    "amy",
    "angela",
    "shirley",
    "anna",
    "brenda",
    "pamela",
    "emma",
    "nicole",
    "helen",
    "samantha",
    "katherine",
    "christine",
    "debra",
    "rachel",
    "carolyn",
    "janet",
    "catherine",
    "maria",
    "heather",
    "diane",
    "ruth",
    "julie",
    "olivia",
    "joyce",
    "virginia",
    "victoria",
    "kelly",
    "lauren",
    "christina",
    "joan",
    "evelyn",
    "judith",
    "megan",
    "andrea",
    "cheryl",
    "hannah",
    "jacqueline",
    "martha",
    "gloria",
    "teresa",
    "ann",
    "sara",
    "madison",
    "frances",
    "kathryn",
    "janice",
    "jean",
    "abigail",
    "alice",
    "julia",
    "judy",
    "sophia",
    "grace",
    "denise",
    "amber",
    "doris",
    "marilyn",
    "danielle",
    "beverly",
    "isabella",
    "theresa",
    "diana",
    "natalie",
    "brittany",
    "charlotte",
    "marie",
    "kayla",
    "alexis",
    "lori",
    "oliver",
    "noah",
    "liam",
    "lucas",
    "mateo",
    "leo",
    "elijah",
    "ethan",
    "mia",
    "ava",
    "chloe",
    "zoe",
    "lily",
    "ella",
    "nora",
    "aria",
    "luna",
    "layla",
    "freya",
    "ingrid",
    "sven",
    "lars",
    "jurgen",
    "francois",
    "pierre",
    "giulia",
    "marco",
    "luca",
    "sofia",
    "chiara",
    "pablo",
];

const NICKNAMES: &[(&str, &str)] = &[
    ("william", "bill"),
    ("robert", "bob"),
    ("margaret", "peggy"),
    ("elizabeth", "liz"),
    ("james", "jim"),
    ("john", "jack"),
    ("michael", "mike"),
    ("richard", "dick"),
    ("joseph", "joe"),
    ("thomas", "tom"),
    ("charles", "charlie"),
    ("christopher", "chris"),
    ("daniel", "dan"),
    ("matthew", "matt"),
    ("anthony", "tony"),
    ("catherine", "kate"),
    ("rebecca", "becky"),
    ("deborah", "debbie"),
    ("patricia", "pat"),
    ("samuel", "sam"),
];

const LAST_NAMES: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "gomez",
    "phillips",
    "evans",
    "turner",
    "diaz",
    "parker",
    "cruz",
    "edwards",
    "collins",
    "reyes",
    "stewart",
    "morris",
    "morales",
    "murphy",
    "cook",
    "rogers",
    "gutierrez",
    "ortiz",
    "morgan",
    "cooper",
    "peterson",
    "bailey",
    "reed",
    "kelly",
    "howard",
    "ramos",
    "kim",
    "cox",
    "ward",
    "richardson",
    "watson",
    "brooks",
    "chavez",
    "wood",
    "james",
    "bennett",
    "gray",
    "mendoza",
    "ruiz",
    "hughes",
    "price",
    "alvarez",
    "castillo",
    "sanders",
    "patel",
    "myers",
    "long",
    "ross",
    "foster",
    "jimenez",
    "muller",
    "schmidt",
    "schneider",
    "fischer",
    "weber",
    "meyer",
    "wagner",
    "becker",
    "schulz",
    "hoffmann",
    "dubois",
    "lefevre",
    "moreau",
    "laurent",
    "rossi",
    "russo",
    "ferrari",
    "esposito",
    "bianchi",
    "romano",
    "colombo",
    "ricci",
    "marino",
    "greco",
    "bruno",
    "gallo",
    "conti",
    "deluca",
    "mancini",
    "costa",
    "obrien",
    "oconnor",
    "mccarthy",
    "walsh",
    "byrne",
    "ryan",
    "doyle",
    "kennedy",
    "lynch",
    "murray",
    "quinn",
    "moran",
    "fitzgerald",
    "brennan",
    "burke",
    "dunne",
    "nolan",
    "hayes",
    "andersson",
    "johansson",
    "karlsson",
    "nilsson",
    "eriksson",
    "larsson",
    "olsson",
    "persson",
    "svensson",
    "gustafsson",
    "pettersson",
    "jonsson",
    "hansen",
    "jensen",
    "nielsen",
    "pedersen",
    "kowalski",
    "nowak",
    "wisniewski",
    "wojcik",
    "kaminski",
    "lewandowski",
    "zielinski",
    "novak",
    "horvat",
    "kovacs",
    "szabo",
    "toth",
    "nagy",
    "popescu",
    "ionescu",
    "petrov",
    "ivanov",
    "silva",
    "santos",
    "oliveira",
    "souza",
    "pereira",
    "lima",
    "carvalho",
    "ferreira",
    "almeida",
    "tanaka",
    "suzuki",
    "takahashi",
    "watanabe",
    "yamamoto",
    "nakamura",
    "kobayashi",
    "chen",
    "wang",
    "zhang",
    "liu",
    "yang",
    "huang",
    "zhao",
    "zhou",
    "wu",
    "xu",
    "sun",
    "ma",
    "zhu",
    "hu",
    "guo",
    "he",
    "lin",
    "luo",
    "khan",
    "ali",
    "ahmed",
    "hussain",
    "shah",
    "singh",
    "kumar",
    "sharma",
    "gupta",
];

const STREETS: &[&str] = &[
    "high street",
    "station road",
    "main street",
    "park road",
    "church street",
    "church road",
    "london road",
    "victoria road",
    "green lane",
    "manor road",
    "church lane",
    "park avenue",
    "the avenue",
    "queens road",
    "new road",
    "grange road",
    "kings road",
    "north street",
    "school lane",
    "mill lane",
    "springfield road",
    "george street",
    "west street",
    "chester road",
    "york road",
    "king street",
    "albert road",
    "south street",
    "windsor road",
    "alexandra road",
    "stanley road",
    "richmond road",
    "broadway",
    "queen street",
    "mill road",
    "st johns road",
    "orchard close",
    "elm grove",
    "oak avenue",
    "cedar drive",
    "maple court",
    "willow way",
    "birch close",
    "ash grove",
    "beech road",
    "hawthorn drive",
    "chestnut avenue",
    "linden place",
    "rowan close",
    "holly lane",
];

const STREET_ABBREVIATIONS: &[(&str, &str)] = &[
    (" street", " st"),
    (" road", " rd"),
    (" avenue", " ave"),
    (" drive", " dr"),
    (" lane", " ln"),
    (" close", " cl"),
];

const DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "example.org",
    "mail.de",
];

/// A generated person: the truth behind the records.
struct Person {
    first: &'static str,
    last: &'static str,
    birth: BirthDate,
    email: String,
    mobile: String,
    landline: String,
    house: u32,
    street: &'static str,
    postcode: String,
    user_id: String,
}

/// Generated records with the person each describes.
pub struct Customers {
    pub records: Vec<CanonicalRecord>,
    pub person_of: Vec<u32>,
}

fn typo(rng: &mut StdRng, text: &str) -> String {
    let mut characters: Vec<char> = text.chars().collect();
    if characters.len() < 3 {
        return text.to_string();
    }
    let position = rng.random_range(1..characters.len() - 1);
    match rng.random_range(0..3) {
        0 => characters.swap(position, position + 1),
        1 => {
            characters.remove(position);
        }
        _ => characters[position] = (b'a' + rng.random_range(0..26u8)) as char,
    }
    characters.into_iter().collect()
}

fn capitalize(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().collect::<String>() + characters.as_str(),
        None => String::new(),
    }
}

fn new_person(rng: &mut StdRng, index: usize, household: Option<&Person>) -> Person {
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = household.map_or_else(
        || LAST_NAMES[rng.random_range(0..LAST_NAMES.len())],
        |head| head.last,
    );
    let birth = BirthDate {
        year: rng.random_range(1940..2006),
        month: rng.random_range(1..13),
        day: rng.random_range(1..29),
    };
    let domain = DOMAINS[rng.random_range(0..DOMAINS.len())];
    Person {
        first,
        last,
        birth,
        email: format!("{first}.{last}{index}@{domain}"),
        mobile: format!("07{:09}", 100_000_000 + index as u64 * 7 % 899_999_999),
        landline: household.map_or_else(
            || format!("020{:08}", rng.random_range(10_000_000..99_999_999u32)),
            |head| head.landline.clone(),
        ),
        house: household.map_or_else(|| rng.random_range(1..300), |head| head.house),
        street: household.map_or_else(
            || STREETS[rng.random_range(0..STREETS.len())],
            |head| head.street,
        ),
        postcode: household.map_or_else(
            || {
                format!(
                    "{}{} {}{}",
                    ["SW", "NW", "E", "N", "SE", "W", "EC", "WC"][rng.random_range(0..8)],
                    rng.random_range(1..30),
                    rng.random_range(1..10),
                    ["AA", "AB", "BD", "DE", "HL", "QX"][rng.random_range(0..6)]
                )
            },
            |head| head.postcode.clone(),
        ),
        user_id: format!("u{index:08}"),
    }
}

fn first_name_variant(rng: &mut StdRng, first: &str) -> String {
    let roll: f64 = rng.random();
    if roll < 0.08 {
        if let Some((_, nickname)) = NICKNAMES.iter().find(|(formal, _)| *formal == first) {
            return capitalize(nickname);
        }
    }
    if roll < 0.15 {
        return capitalize(&typo(rng, first));
    }
    if roll < 0.5 {
        return first.to_uppercase();
    }
    capitalize(first)
}

fn phone_variant(rng: &mut StdRng, national: &str) -> String {
    if rng.random_bool(0.5) {
        format!("+44 {}", &national[1..])
    } else {
        format!("{} {}", &national[..5], &national[5..])
    }
}

fn record_for(
    rng: &mut StdRng,
    source: &'static str,
    id: usize,
    person: &Person,
    shop_phone: &str,
) -> CanonicalRecord {
    let mut record = CanonicalRecord::new(source, format!("{source}-{id}"));
    let present = |rng: &mut StdRng, probability: f64| rng.random_bool(probability);
    let (p_names, p_birth, p_email, p_phone, p_address) = match source {
        "crm" => (1.0, 0.9, 0.8, 0.8, 0.9),
        "shop" => (0.95, 0.4, 0.97, 0.6, 0.9),
        _ => (0.7, 0.2, 1.0, 0.2, 0.3),
    };
    if present(rng, p_names) {
        record.first_name = Some(first_name_variant(rng, person.first));
        let last = if rng.random_bool(0.08) {
            typo(rng, person.last)
        } else {
            person.last.to_string()
        };
        record.last_name = Some(capitalize(&last));
    }
    if present(rng, p_birth) {
        let mut birth = person.birth;
        if rng.random_bool(0.03) && birth.day <= 12 {
            std::mem::swap(&mut birth.day, &mut birth.month);
        }
        record.date_of_birth = Some(birth);
    }
    if present(rng, p_email) {
        let email = if rng.random_bool(0.2) {
            person.email.to_uppercase()
        } else {
            person.email.clone()
        };
        record.emails.push(email);
    }
    if present(rng, p_phone) {
        let national = if rng.random_bool(0.4) {
            &person.landline
        } else {
            &person.mobile
        };
        record.phones.push(phone_variant(rng, national));
    }
    if source == "shop" {
        record
            .external_ids
            .insert("user_id".to_string(), vec![person.user_id.clone()]);
        if rng.random_bool(0.005) {
            record.phones = vec![shop_phone.to_string()];
        }
    }
    if present(rng, p_address) {
        let mut line = format!("{} {}", person.house, person.street);
        if rng.random_bool(0.3) {
            for (full, short) in STREET_ABBREVIATIONS {
                line = line.replace(full, short);
            }
        }
        record.addresses.push(PostalAddress {
            line: Some(line),
            city: Some("London".to_string()),
            postcode: Some(person.postcode.clone()),
            country: Some("GB".to_string()),
            ..PostalAddress::default()
        });
    }
    record
}

/// Generates about `count` records.
pub fn generate(count: usize, seed: u64) -> Customers {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut people: Vec<Person> = Vec::new();
    let mut records = Vec::with_capacity(count + 3);
    let mut person_of = Vec::with_capacity(count + 3);
    let shop_phone = "+44 20 7946 0000";
    while records.len() < count {
        let index = people.len();
        let household = if index > 0 && rng.random_bool(0.3) {
            people.get(index - 1)
        } else {
            None
        };
        let person = new_person(&mut rng, index, household);
        let mut sources: Vec<&'static str> = ["crm", "shop", "marketing"]
            .into_iter()
            .zip([0.7, 0.6, 0.5])
            .filter(|(_, probability)| rng.random_bool(*probability))
            .map(|(source, _)| source)
            .collect();
        if sources.is_empty() {
            sources.push("crm");
        }
        for source in sources {
            let id = records.len();
            records.push(record_for(&mut rng, source, id, &person, shop_phone));
            person_of.push(index as u32);
        }
        people.push(person);
    }
    Customers { records, person_of }
}

/// New records for the real-time run: half re-describe people of `existing` records (a "web"
/// source copy with some noise), half are new people.
pub fn arrivals(count: usize, seed: u64, existing: &[CanonicalRecord]) -> Vec<CanonicalRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut records = Vec::with_capacity(count);
    for offset in 0..count {
        let mut record = if offset % 2 == 0 && !existing.is_empty() {
            let mut copy = existing[rng.random_range(0..existing.len())].clone();
            if let Some(last) = copy.last_name.take() {
                copy.last_name = Some(if rng.random_bool(0.1) {
                    typo(&mut rng, &last)
                } else {
                    last
                });
            }
            if rng.random_bool(0.3) {
                copy.phones.clear();
            }
            copy
        } else {
            let person = new_person(&mut rng, 10_000_000 + offset, None);
            record_for(&mut rng, "crm", offset, &person, "+44 20 7946 0000")
        };
        record.key = cairn_identity::RecordKey::new("web", format!("web-{offset}"));
        records.push(record);
    }
    records
}
