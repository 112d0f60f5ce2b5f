//! Field-name lexicons: what a key says its value is, in English, German, French, Spanish,
//! Italian, Dutch and Portuguese.
//!
//! A key is folded (lower case, accents removed, separators and camelCase humps marked as token
//! boundaries, then joined) and matched against one Aho-Corasick automaton of folded words. A
//! word marked `W` must cover whole tokens (`name` in `first_name`, not in `rename`); the others
//! may sit inside a compound (`geburtsdatum`, `krankenversicherung`). The longest match wins,
//! and some longer words exist only to veto a shorter one (`filename`, `hostname`).

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, MatchKind};
use domicile_policy::{Category, Country};

/// What a field name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The value is this category whenever it is present.
    Is(Category),
    /// A generic name field (`name`, `nom`, `nome`): personal only when the value looks like a
    /// person's name.
    GenericName,
    /// A country in a postal address: the value names the subject's country.
    AddressCountry,
    /// Citizenship or nationality: the value names a country.
    Citizenship,
    /// Coordinates: precise when the value has at least three decimals.
    Coordinate,
    /// A phone number field: national formats are tried too.
    Phone,
    /// An email field.
    Email,
    /// An identifier field: check-digit formats that are weak alone are tried.
    NationalId,
    /// A longer word that vetoes a shorter match (`filename` is not a name).
    Not,
}

use Category as C;
use Field as F;

/// Whether a word must cover whole tokens.
const W: bool = true;
const S: bool = false;

/// The lexicon: folded word, whole-token only, meaning.
const WORDS: &[(&str, bool, Field)] = &[
    // Names.
    ("name", W, F::GenericName),
    ("nom", W, F::GenericName),
    ("nombre", W, F::GenericName),
    ("nome", W, F::GenericName),
    ("naam", W, F::GenericName),
    ("fullname", S, F::Is(C::Name)),
    ("firstname", S, F::Is(C::Name)),
    ("givenname", S, F::Is(C::Name)),
    ("forename", S, F::Is(C::Name)),
    ("lastname", S, F::Is(C::Name)),
    ("surname", S, F::Is(C::Name)),
    ("familyname", S, F::Is(C::Name)),
    ("middlename", S, F::Is(C::Name)),
    ("maidenname", S, F::Is(C::Name)),
    ("fname", W, F::Is(C::Name)),
    ("lname", W, F::Is(C::Name)),
    ("vorname", S, F::Is(C::Name)),
    ("nachname", S, F::Is(C::Name)),
    ("familienname", S, F::Is(C::Name)),
    ("geburtsname", S, F::Is(C::Name)),
    ("prenom", S, F::Is(C::Name)),
    ("nomdefamille", S, F::Is(C::Name)),
    ("nomdenaissance", S, F::Is(C::Name)),
    ("apellido", S, F::Is(C::Name)),
    ("apellidos", S, F::Is(C::Name)),
    ("nombrecompleto", S, F::Is(C::Name)),
    ("cognome", S, F::Is(C::Name)),
    ("nomecompleto", S, F::Is(C::Name)),
    ("voornaam", S, F::Is(C::Name)),
    ("achternaam", S, F::Is(C::Name)),
    ("tussenvoegsel", S, F::Is(C::Name)),
    ("sobrenome", S, F::Is(C::Name)),
    ("primeironome", S, F::Is(C::Name)),
    ("apelido", S, F::Is(C::Name)),
    ("cardholder", S, F::Is(C::Name)),
    ("accountholder", S, F::Is(C::Name)),
    ("kontoinhaber", S, F::Is(C::Name)),
    ("titular", W, F::Is(C::Name)),
    ("titolare", W, F::Is(C::Name)),
    ("rekeninghouder", S, F::Is(C::Name)),
    ("filename", S, F::Not),
    ("hostname", S, F::Not),
    ("username", S, F::Not),
    ("pathname", S, F::Not),
    ("typename", S, F::Not),
    ("classname", S, F::Not),
    ("tablename", S, F::Not),
    ("fieldname", S, F::Not),
    ("nomfichier", S, F::Not),
    ("nombrearchivo", S, F::Not),
    ("nomefile", S, F::Not),
    ("dateiname", S, F::Not),
    ("bestandsnaam", S, F::Not),
    ("nomearquivo", S, F::Not),
    // Postal addresses.
    ("address", S, F::Is(C::Address)),
    ("addr", W, F::Is(C::Address)),
    ("street", S, F::Is(C::Address)),
    ("housenumber", S, F::Is(C::Address)),
    ("postcode", S, F::Is(C::Address)),
    ("postalcode", S, F::Is(C::Address)),
    ("zip", W, F::Is(C::Address)),
    ("zipcode", S, F::Is(C::Address)),
    ("city", W, F::Is(C::Address)),
    ("town", W, F::Is(C::Address)),
    ("strasse", S, F::Is(C::Address)),
    ("hausnummer", S, F::Is(C::Address)),
    ("anschrift", S, F::Is(C::Address)),
    ("adresse", S, F::Is(C::Address)),
    ("plz", W, F::Is(C::Address)),
    ("postleitzahl", S, F::Is(C::Address)),
    ("wohnort", S, F::Is(C::Address)),
    ("ort", W, F::Is(C::Address)),
    ("stadt", W, F::Is(C::Address)),
    ("rue", W, F::Is(C::Address)),
    ("codepostal", S, F::Is(C::Address)),
    ("ville", W, F::Is(C::Address)),
    ("domicile", W, F::Is(C::Address)),
    ("direccion", S, F::Is(C::Address)),
    ("calle", W, F::Is(C::Address)),
    ("codigopostal", S, F::Is(C::Address)),
    ("ciudad", W, F::Is(C::Address)),
    ("domicilio", S, F::Is(C::Address)),
    ("localidad", S, F::Is(C::Address)),
    ("indirizzo", S, F::Is(C::Address)),
    ("citta", W, F::Is(C::Address)),
    ("cap", W, F::Is(C::Address)),
    ("civico", W, F::Is(C::Address)),
    ("straat", S, F::Is(C::Address)),
    ("adres", W, F::Is(C::Address)),
    ("huisnummer", S, F::Is(C::Address)),
    ("woonplaats", S, F::Is(C::Address)),
    ("plaats", W, F::Is(C::Address)),
    ("endereco", S, F::Is(C::Address)),
    ("rua", W, F::Is(C::Address)),
    ("morada", S, F::Is(C::Address)),
    ("cep", W, F::Is(C::Address)),
    ("cidade", W, F::Is(C::Address)),
    ("bairro", S, F::Is(C::Address)),
    ("ipaddress", S, F::Not),
    ("emailaddress", S, F::Email),
    ("macaddress", S, F::Not),
    ("webaddress", S, F::Not),
    // Address country and citizenship.
    ("country", W, F::AddressCountry),
    ("countrycode", S, F::AddressCountry),
    ("land", W, F::AddressCountry),
    ("pays", W, F::AddressCountry),
    ("pais", W, F::AddressCountry),
    ("paese", W, F::AddressCountry),
    ("nazione", W, F::AddressCountry),
    ("nationality", S, F::Citizenship),
    ("citizenship", S, F::Citizenship),
    ("staatsangehorigkeit", S, F::Citizenship),
    ("staatsangehoerigkeit", S, F::Citizenship),
    ("staatsburgerschaft", S, F::Citizenship),
    ("nationalitat", S, F::Citizenship),
    ("nationalite", S, F::Citizenship),
    ("citoyennete", S, F::Citizenship),
    ("nacionalidad", S, F::Citizenship),
    ("ciudadania", S, F::Citizenship),
    ("nazionalita", S, F::Citizenship),
    ("cittadinanza", S, F::Citizenship),
    ("nationaliteit", S, F::Citizenship),
    ("staatsburgerschap", S, F::Citizenship),
    ("nacionalidade", S, F::Citizenship),
    ("cidadania", S, F::Citizenship),
    // Date of birth.
    ("dob", W, F::Is(C::DateOfBirth)),
    ("birthdate", S, F::Is(C::DateOfBirth)),
    ("dateofbirth", S, F::Is(C::DateOfBirth)),
    ("birthday", S, F::Is(C::DateOfBirth)),
    ("birthdt", S, F::Is(C::DateOfBirth)),
    ("geburtsdatum", S, F::Is(C::DateOfBirth)),
    ("geburtstag", S, F::Is(C::DateOfBirth)),
    ("gebdat", W, F::Is(C::DateOfBirth)),
    ("datedenaissance", S, F::Is(C::DateOfBirth)),
    ("naissance", S, F::Is(C::DateOfBirth)),
    ("fechadenacimiento", S, F::Is(C::DateOfBirth)),
    ("fechanacimiento", S, F::Is(C::DateOfBirth)),
    ("nacimiento", S, F::Is(C::DateOfBirth)),
    ("datadinascita", S, F::Is(C::DateOfBirth)),
    ("datanascita", S, F::Is(C::DateOfBirth)),
    ("geboortedatum", S, F::Is(C::DateOfBirth)),
    ("geboren", W, F::Is(C::DateOfBirth)),
    ("datadenascimento", S, F::Is(C::DateOfBirth)),
    ("datanascimento", S, F::Is(C::DateOfBirth)),
    ("nascimento", S, F::Is(C::DateOfBirth)),
    // Precise location.
    ("lat", W, F::Coordinate),
    ("lng", W, F::Coordinate),
    ("lon", W, F::Coordinate),
    ("latitude", S, F::Coordinate),
    ("longitude", S, F::Coordinate),
    ("geolocation", S, F::Coordinate),
    ("coordinates", S, F::Coordinate),
    ("coords", W, F::Coordinate),
    ("gps", W, F::Coordinate),
    ("geo", W, F::Coordinate),
    ("breitengrad", S, F::Coordinate),
    ("laengengrad", S, F::Coordinate),
    ("langengrad", S, F::Coordinate),
    ("koordinaten", S, F::Coordinate),
    ("standort", S, F::Coordinate),
    ("coordonnees", S, F::Coordinate),
    ("latitud", S, F::Coordinate),
    ("longitud", S, F::Coordinate),
    ("coordenadas", S, F::Coordinate),
    ("latitudine", S, F::Coordinate),
    ("longitudine", S, F::Coordinate),
    ("coordinate", S, F::Coordinate),
    ("breedtegraad", S, F::Coordinate),
    ("lengtegraad", S, F::Coordinate),
    ("locatie", W, F::Coordinate),
    ("localizacao", S, F::Coordinate),
    // Contact fields.
    ("phone", S, F::Phone),
    ("telephone", S, F::Phone),
    ("tel", W, F::Phone),
    ("mobile", W, F::Phone),
    ("cell", W, F::Phone),
    ("cellphone", S, F::Phone),
    ("fax", W, F::Phone),
    ("msisdn", S, F::Phone),
    ("telefon", S, F::Phone),
    ("handy", W, F::Phone),
    ("rufnummer", S, F::Phone),
    ("telefonnummer", S, F::Phone),
    ("portable", W, F::Phone),
    ("telefono", S, F::Phone),
    ("movil", W, F::Phone),
    ("cellulare", S, F::Phone),
    ("telefoon", S, F::Phone),
    ("mobiel", W, F::Phone),
    ("telefoonnummer", S, F::Phone),
    ("celular", S, F::Phone),
    ("telemovel", S, F::Phone),
    ("email", S, F::Email),
    ("mail", W, F::Email),
    ("courriel", S, F::Email),
    ("correo", S, F::Email),
    ("posta", W, F::Email),
    // Identifiers.
    ("ssn", W, F::NationalId),
    ("socialsecurity", S, F::NationalId),
    ("nationalid", S, F::NationalId),
    ("nationalidentity", S, F::NationalId),
    ("idnumber", S, F::NationalId),
    ("idcard", S, F::NationalId),
    ("taxid", S, F::NationalId),
    ("tin", W, F::NationalId),
    ("nin", W, F::NationalId),
    ("nino", W, F::NationalId),
    ("nationalinsurance", S, F::NationalId),
    ("personalnumber", S, F::NationalId),
    ("passport", S, F::NationalId),
    ("driverslicense", S, F::NationalId),
    ("licensenumber", S, F::NationalId),
    ("residentid", S, F::NationalId),
    ("citizenid", S, F::NationalId),
    ("steuerid", S, F::NationalId),
    ("steueridentifikationsnummer", S, F::NationalId),
    ("identifikationsnummer", S, F::NationalId),
    ("idnr", W, F::NationalId),
    ("steuernummer", S, F::NationalId),
    ("personalausweis", S, F::NationalId),
    ("ausweisnummer", S, F::NationalId),
    ("sozialversicherungsnummer", S, F::NationalId),
    ("reisepass", S, F::NationalId),
    ("nir", W, F::NationalId),
    ("securitesociale", S, F::NationalId),
    ("numerosecu", S, F::NationalId),
    ("insee", W, F::NationalId),
    ("cartedidentite", S, F::NationalId),
    ("dni", W, F::NationalId),
    ("nie", W, F::NationalId),
    ("nif", W, F::NationalId),
    ("documentodeidentidad", S, F::NationalId),
    ("cedula", S, F::NationalId),
    ("seguridadsocial", S, F::NationalId),
    ("codicefiscale", S, F::NationalId),
    ("cf", W, F::NationalId),
    ("cartaidentita", S, F::NationalId),
    ("bsn", W, F::NationalId),
    ("burgerservicenummer", S, F::NationalId),
    ("sofinummer", S, F::NationalId),
    ("paspoort", S, F::NationalId),
    ("cpf", W, F::NationalId),
    ("rg", W, F::NationalId),
    ("cartaodecidadao", S, F::NationalId),
    ("pesel", W, F::NationalId),
    ("personnummer", S, F::NationalId),
    ("aadhaar", S, F::NationalId),
    ("aadhar", S, F::NationalId),
    ("uidai", S, F::NationalId),
    ("mynumber", S, F::NationalId),
    ("kojinbango", S, F::NationalId),
    ("individualnumber", S, F::NationalId),
    ("shenfenzheng", S, F::NationalId),
    ("residentidentity", S, F::NationalId),
    ("hetu", W, F::NationalId),
    ("henkilotunnus", S, F::NationalId),
    ("personbeteckning", S, F::NationalId),
    ("residentregistration", S, F::NationalId),
    ("jumindeungnok", S, F::NationalId),
    // Health (with diagnoses).
    ("health", S, F::Is(C::Health)),
    ("medical", S, F::Is(C::Health)),
    ("diagnosis", S, F::Is(C::Health)),
    ("diagnoses", S, F::Is(C::Health)),
    ("diagnose", S, F::Is(C::Health)),
    ("diagnostic", S, F::Is(C::Health)),
    ("diagnostico", S, F::Is(C::Health)),
    ("diagnosi", W, F::Is(C::Health)),
    ("icd10", S, F::Is(C::Health)),
    ("icd", W, F::Is(C::Health)),
    ("medication", S, F::Is(C::Health)),
    ("prescription", S, F::Is(C::Health)),
    ("allergy", S, F::Is(C::Health)),
    ("allergies", S, F::Is(C::Health)),
    ("disability", S, F::Is(C::Health)),
    ("illness", S, F::Is(C::Health)),
    ("disease", S, F::Is(C::Health)),
    ("symptom", S, F::Is(C::Health)),
    ("bloodtype", S, F::Is(C::Health)),
    ("bloodgroup", S, F::Is(C::Health)),
    ("pregnan", S, F::Is(C::Health)),
    ("hiv", W, F::Is(C::Health)),
    ("treatment", S, F::Is(C::Health)),
    ("gesundheit", S, F::Is(C::Health)),
    ("krankheit", S, F::Is(C::Health)),
    ("erkrankung", S, F::Is(C::Health)),
    ("medikament", S, F::Is(C::Health)),
    ("behinderung", S, F::Is(C::Health)),
    ("allergie", S, F::Is(C::Health)),
    ("blutgruppe", S, F::Is(C::Health)),
    ("befund", S, F::Is(C::Health)),
    ("sante", W, F::Is(C::Health)),
    ("maladie", S, F::Is(C::Health)),
    ("medicament", S, F::Is(C::Health)),
    ("handicap", S, F::Is(C::Health)),
    ("groupesanguin", S, F::Is(C::Health)),
    ("ordonnance", S, F::Is(C::Health)),
    ("salud", W, F::Is(C::Health)),
    ("enfermedad", S, F::Is(C::Health)),
    ("medicamento", S, F::Is(C::Health)),
    ("discapacidad", S, F::Is(C::Health)),
    ("alergia", S, F::Is(C::Health)),
    ("gruposanguineo", S, F::Is(C::Health)),
    ("salute", W, F::Is(C::Health)),
    ("malattia", S, F::Is(C::Health)),
    ("farmaco", S, F::Is(C::Health)),
    ("farmaci", W, F::Is(C::Health)),
    ("disabilita", S, F::Is(C::Health)),
    ("gezondheid", S, F::Is(C::Health)),
    ("ziekte", S, F::Is(C::Health)),
    ("medicijn", S, F::Is(C::Health)),
    ("medicatie", S, F::Is(C::Health)),
    ("bloedgroep", S, F::Is(C::Health)),
    ("saude", W, F::Is(C::Health)),
    ("doenca", S, F::Is(C::Health)),
    ("deficiencia", S, F::Is(C::Health)),
    ("tiposanguineo", S, F::Is(C::Health)),
    // Genetic.
    ("genetic", S, F::Is(C::Genetic)),
    ("genome", S, F::Is(C::Genetic)),
    ("genotype", S, F::Is(C::Genetic)),
    ("dna", W, F::Is(C::Genetic)),
    ("genetisch", S, F::Is(C::Genetic)),
    ("erbgut", S, F::Is(C::Genetic)),
    ("genetique", S, F::Is(C::Genetic)),
    ("adn", W, F::Is(C::Genetic)),
    ("genetico", S, F::Is(C::Genetic)),
    ("genetica", S, F::Is(C::Genetic)),
    ("genoom", S, F::Is(C::Genetic)),
    ("genoma", S, F::Is(C::Genetic)),
    // Biometric.
    ("biometric", S, F::Is(C::Biometric)),
    ("fingerprint", S, F::Is(C::Biometric)),
    ("faceprint", S, F::Is(C::Biometric)),
    ("facetemplate", S, F::Is(C::Biometric)),
    ("faceid", S, F::Is(C::Biometric)),
    ("iris", W, F::Is(C::Biometric)),
    ("retina", S, F::Is(C::Biometric)),
    ("voiceprint", S, F::Is(C::Biometric)),
    ("biometrisch", S, F::Is(C::Biometric)),
    ("fingerabdruck", S, F::Is(C::Biometric)),
    ("biometrique", S, F::Is(C::Biometric)),
    ("empreintedigitale", S, F::Is(C::Biometric)),
    ("biometrico", S, F::Is(C::Biometric)),
    ("huelladactilar", S, F::Is(C::Biometric)),
    ("impronta", S, F::Is(C::Biometric)),
    ("vingerafdruk", S, F::Is(C::Biometric)),
    ("biometrie", S, F::Is(C::Biometric)),
    ("impressaodigital", S, F::Is(C::Biometric)),
    ("biometria", S, F::Is(C::Biometric)),
    // Religion.
    ("religion", S, F::Is(C::Religion)),
    ("religious", S, F::Is(C::Religion)),
    ("faith", W, F::Is(C::Religion)),
    ("denomination", S, F::Is(C::Religion)),
    ("konfession", S, F::Is(C::Religion)),
    ("religionszugehorigkeit", S, F::Is(C::Religion)),
    ("confession", S, F::Is(C::Religion)),
    ("religione", S, F::Is(C::Religion)),
    ("religiao", S, F::Is(C::Religion)),
    ("godsdienst", S, F::Is(C::Religion)),
    ("religie", S, F::Is(C::Religion)),
    ("confesion", S, F::Is(C::Religion)),
    // Ethnicity.
    ("ethnicity", S, F::Is(C::Ethnicity)),
    ("ethnic", S, F::Is(C::Ethnicity)),
    ("race", W, F::Is(C::Ethnicity)),
    ("racial", S, F::Is(C::Ethnicity)),
    ("ethnie", S, F::Is(C::Ethnicity)),
    ("ethnisch", S, F::Is(C::Ethnicity)),
    ("ethnique", S, F::Is(C::Ethnicity)),
    ("etnia", S, F::Is(C::Ethnicity)),
    ("raza", W, F::Is(C::Ethnicity)),
    ("razza", W, F::Is(C::Ethnicity)),
    ("etnico", S, F::Is(C::Ethnicity)),
    ("etniciteit", S, F::Is(C::Ethnicity)),
    ("afkomst", S, F::Is(C::Ethnicity)),
    ("raca", W, F::Is(C::Ethnicity)),
    ("etnicidade", S, F::Is(C::Ethnicity)),
    // Political opinion.
    ("political", S, F::Is(C::Political)),
    ("politicalparty", S, F::Is(C::Political)),
    ("partyaffiliation", S, F::Is(C::Political)),
    ("partei", W, F::Is(C::Political)),
    ("parteizugehorigkeit", S, F::Is(C::Political)),
    ("politisch", S, F::Is(C::Political)),
    ("politique", S, F::Is(C::Political)),
    ("partipolitique", S, F::Is(C::Political)),
    ("politica", S, F::Is(C::Political)),
    ("partidopolitico", S, F::Is(C::Political)),
    ("partitopolitico", S, F::Is(C::Political)),
    ("politiek", S, F::Is(C::Political)),
    ("politiekepartij", S, F::Is(C::Political)),
    ("voting", S, F::Is(C::Political)),
    ("politicalopinion", S, F::Is(C::Political)),
    ("politico", S, F::Is(C::Political)),
    // Trade union.
    ("tradeunion", S, F::Is(C::Union)),
    ("unionmember", S, F::Is(C::Union)),
    ("laborunion", S, F::Is(C::Union)),
    ("labourunion", S, F::Is(C::Union)),
    ("gewerkschaft", S, F::Is(C::Union)),
    ("syndicat", S, F::Is(C::Union)),
    ("syndical", S, F::Is(C::Union)),
    ("sindicato", S, F::Is(C::Union)),
    ("sindical", S, F::Is(C::Union)),
    ("sindacato", S, F::Is(C::Union)),
    ("sindacale", S, F::Is(C::Union)),
    ("vakbond", S, F::Is(C::Union)),
    // Sex life and sexual orientation.
    ("sexualorientation", S, F::Is(C::SexLife)),
    ("sexuality", S, F::Is(C::SexLife)),
    ("sexlife", S, F::Is(C::SexLife)),
    ("sexualitat", S, F::Is(C::SexLife)),
    ("sexuelleorientierung", S, F::Is(C::SexLife)),
    ("orientationsexuelle", S, F::Is(C::SexLife)),
    ("sexualite", S, F::Is(C::SexLife)),
    ("orientacionsexual", S, F::Is(C::SexLife)),
    ("sexualidad", S, F::Is(C::SexLife)),
    ("orientamentosessuale", S, F::Is(C::SexLife)),
    ("sessualita", S, F::Is(C::SexLife)),
    ("seksuelegeaardheid", S, F::Is(C::SexLife)),
    ("seksualiteit", S, F::Is(C::SexLife)),
    ("orientacaosexual", S, F::Is(C::SexLife)),
    ("sexualidade", S, F::Is(C::SexLife)),
    // Criminal records.
    ("criminal", S, F::Is(C::Criminal)),
    ("conviction", S, F::Is(C::Criminal)),
    ("offence", S, F::Is(C::Criminal)),
    ("offense", S, F::Is(C::Criminal)),
    ("policerecord", S, F::Is(C::Criminal)),
    ("vorstrafe", S, F::Is(C::Criminal)),
    ("strafregister", S, F::Is(C::Criminal)),
    ("fuhrungszeugnis", S, F::Is(C::Criminal)),
    ("fuehrungszeugnis", S, F::Is(C::Criminal)),
    ("casierjudiciaire", S, F::Is(C::Criminal)),
    ("condamnation", S, F::Is(C::Criminal)),
    ("antecedentespenales", S, F::Is(C::Criminal)),
    ("antecedentescriminais", S, F::Is(C::Criminal)),
    ("casellariogiudiziale", S, F::Is(C::Criminal)),
    ("precedentipenali", S, F::Is(C::Criminal)),
    ("strafblad", S, F::Is(C::Criminal)),
    ("veroordeling", S, F::Is(C::Criminal)),
    ("condenacao", S, F::Is(C::Criminal)),
];

/// The longest key the lexicon reads; longer keys are not field names.
const MAX_KEY: usize = 64;

fn automaton() -> Option<&'static AhoCorasick> {
    static AC: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    AC.get_or_init(|| {
        AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(WORDS.iter().map(|w| w.0))
            .ok()
    })
    .as_ref()
}

/// Folds one character of a key to ASCII lower case, accents removed (`ß` to `ss`).
fn fold(c: char, out: &mut [u8; MAX_KEY * 2], len: &mut usize) {
    let mapped: &[u8] = match c {
        'a'..='z' | '0'..='9' => {
            out[*len] = c as u8;
            *len += 1;
            return;
        }
        'A'..='Z' => {
            out[*len] = c.to_ascii_lowercase() as u8;
            *len += 1;
            return;
        }
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => b"a",
        'ç' | 'Ç' => b"c",
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => b"e",
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => b"i",
        'ñ' | 'Ñ' => b"n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => b"o",
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => b"u",
        'ß' => b"ss",
        'æ' | 'Æ' => b"ae",
        'œ' | 'Œ' => b"oe",
        _ => b"",
    };
    for &m in mapped {
        out[*len] = m;
        *len += 1;
    }
}

/// What the key `key` says its value is, if anything.
pub fn classify(key: &str) -> Option<Field> {
    if key.len() > MAX_KEY || key.is_empty() {
        return None;
    }
    let mut folded = [0u8; MAX_KEY * 2];
    let mut len = 0;
    // Token boundaries in the folded key, as a bit set of positions.
    let mut bounds: u128 = 1;
    let mut prev: Option<char> = None;
    for c in key.chars() {
        let sep = !c.is_alphanumeric();
        if sep {
            bounds |= 1 << len;
        } else {
            // camelCase humps and letter-digit changes start a token.
            if let Some(p) = prev
                && ((p.is_lowercase() && c.is_uppercase())
                    || (p.is_alphabetic() && c.is_ascii_digit())
                    || (p.is_ascii_digit() && c.is_alphabetic()))
            {
                bounds |= 1 << len;
            }
            fold(c, &mut folded, &mut len);
        }
        prev = Some(c);
    }
    if len == 0 || len >= 128 {
        return None;
    }
    bounds |= 1 << len;
    let text = &folded[..len];
    let mut best: Option<(usize, Field)> = None;
    for m in automaton()?.find_overlapping_iter(text) {
        let (word, whole, field) = WORDS[m.pattern().as_usize()];
        if whole && (bounds & (1 << m.start()) == 0 || bounds & (1 << m.end()) == 0) {
            continue;
        }
        if best.is_none_or(|(l, _)| word.len() > l) {
            best = Some((word.len(), field));
        }
    }
    match best {
        Some((_, Field::Not)) | None => None,
        Some((_, f)) => Some(f),
    }
}

/// Whether a value looks like a person's name: one to four words, each a capital followed by
/// letters (with `-`, `'` or `.`), and at least two words or a word of three letters or more.
///
/// Read a byte at a time while the text is ASCII, in one pass without cutting it into words
/// first (most values in a name field that are not a name fail at the start of their first or
/// second word): for ASCII, Unicode's whitespace is these six bytes and its upper and lower
/// case are ASCII's. At the first byte that is not ASCII the text is read again a character
/// at a time; an ASCII byte before it that rules a name out rules it out in that reading too.
pub fn looks_like_person_name(v: &str) -> bool {
    let (mut words, mut letters) = (0, 0);
    let (mut at_start, mut after_mark) = (true, false);
    for &c in v.as_bytes() {
        if !c.is_ascii() {
            return person_name_chars(v);
        } else if matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            at_start = true;
        } else if at_start {
            if !c.is_ascii_uppercase() {
                return false;
            }
            (words, letters) = (words + 1, letters + 1);
            (at_start, after_mark) = (false, false);
        } else {
            if !(c.is_ascii_lowercase()
                || matches!(c, b'-' | b'\'' | b'.')
                || (after_mark && c.is_ascii_uppercase()))
            {
                return false;
            }
            letters += usize::from(c.is_ascii_alphabetic());
            after_mark = matches!(c, b'-' | b'\'');
        }
    }
    (1..=4).contains(&words) && letters >= 3
}

/// [`looks_like_person_name`] for any text, a character at a time.
fn person_name_chars(v: &str) -> bool {
    let mut words = 0;
    for w in v.split_whitespace() {
        let mut chars = w.chars();
        let Some(first) = chars.next() else {
            continue;
        };
        let mut after_mark = false;
        let rest_ok = chars.all(|c| {
            let ok = c.is_lowercase()
                || matches!(c, '-' | '\'' | '.')
                || (after_mark && c.is_uppercase());
            after_mark = matches!(c, '-' | '\'');
            ok
        });
        if !first.is_uppercase() || !rest_ok {
            return false;
        }
        words += 1;
    }
    (1..=4).contains(&words) && v.chars().filter(|c| c.is_alphabetic()).count() >= 3
}

/// Whether a coordinate value is precise: a number with at least three decimals in range, or
/// text holding two such numbers (`"52.5200, 13.4050"`).
pub fn precise_coordinate(v: &str) -> bool {
    let is_coord = |t: &str| {
        let t = t.trim();
        t.parse::<f64>().is_ok_and(|x| x.abs() <= 180.0)
            && t.split_once('.').is_some_and(|(_, frac)| frac.len() >= 3)
    };
    is_coord(v)
        || v.split([',', ';', ' '])
            .filter(|t| !t.is_empty())
            .filter(|t| is_coord(t))
            .count()
            >= 2
}

/// Countries by ISO 3166-1 alpha-2, alpha-3 and name in the lexicon's languages, folded.
const COUNTRIES: &[(&str, &str, &str)] = &[
    (
        "AT",
        "AUT",
        "austria|osterreich|autriche|oostenrijk|austria",
    ),
    (
        "BE",
        "BEL",
        "belgium|belgien|belgique|belgica|belgio|belgie",
    ),
    ("BG", "BGR", "bulgaria|bulgarien|bulgarie|bulgarije"),
    (
        "BR",
        "BRA",
        "brazil|brasilien|bresil|brasil|brasile|brazilie",
    ),
    ("CA", "CAN", "canada|kanada|canada"),
    (
        "CH",
        "CHE",
        "switzerland|schweiz|suisse|suiza|svizzera|zwitserland|suica",
    ),
    ("CN", "CHN", "china|chine|cina"),
    ("CY", "CYP", "cyprus|zypern|chypre|chipre|cipro"),
    (
        "CZ",
        "CZE",
        "czechia|czech republic|tschechien|tchequie|chequia|cechia|tsjechie|chequia",
    ),
    (
        "DE",
        "DEU",
        "germany|deutschland|allemagne|alemania|germania|duitsland|alemanha",
    ),
    (
        "DK",
        "DNK",
        "denmark|danemark|dinamarca|danimarca|denemarken",
    ),
    ("EE", "EST", "estonia|estland|estonie|estonia"),
    (
        "ES",
        "ESP",
        "spain|spanien|espagne|espana|spagna|spanje|espanha",
    ),
    (
        "FI",
        "FIN",
        "finland|finnland|finlande|finlandia|finlandia|finlandia",
    ),
    (
        "FR",
        "FRA",
        "france|frankreich|francia|francia|frankrijk|franca",
    ),
    (
        "GB",
        "GBR",
        "united kingdom|uk|great britain|vereinigtes konigreich|grossbritannien|royaume-uni|reino unido|regno unito|verenigd koninkrijk|england|scotland|wales",
    ),
    (
        "GR",
        "GRC",
        "greece|griechenland|grece|grecia|griekenland|grecia",
    ),
    (
        "HR",
        "HRV",
        "croatia|kroatien|croatie|croacia|croazia|kroatie",
    ),
    (
        "HU",
        "HUN",
        "hungary|ungarn|hongrie|hungria|ungheria|hongarije",
    ),
    ("IE", "IRL", "ireland|irland|irlande|irlanda|ierland"),
    ("IN", "IND", "india|indien|inde|india"),
    (
        "IS",
        "ISL",
        "iceland|island|islande|islandia|islanda|ijsland",
    ),
    ("IT", "ITA", "italy|italien|italie|italia|italie|italia"),
    ("JP", "JPN", "japan|japon|giappone|japao"),
    ("LI", "LIE", "liechtenstein"),
    ("LT", "LTU", "lithuania|litauen|lituanie|lituania|litouwen"),
    ("LU", "LUX", "luxembourg|luxemburg|luxemburgo|lussemburgo"),
    (
        "LV",
        "LVA",
        "latvia|lettland|lettonie|letonia|lettonia|letland",
    ),
    ("MT", "MLT", "malta|malte"),
    ("MX", "MEX", "mexico|mexiko|mexique|messico"),
    (
        "NL",
        "NLD",
        "netherlands|niederlande|pays-bas|paises bajos|paesi bassi|nederland|holanda|holland",
    ),
    (
        "NO",
        "NOR",
        "norway|norwegen|norvege|noruega|norvegia|noorwegen",
    ),
    (
        "PL",
        "POL",
        "poland|polen|pologne|polonia|polonia|polen|polonia",
    ),
    ("PT", "PRT", "portugal|portogallo"),
    (
        "RO",
        "ROU",
        "romania|rumanien|roumanie|rumania|roemenie|romenia",
    ),
    (
        "SE",
        "SWE",
        "sweden|schweden|suede|suecia|svezia|zweden|suecia",
    ),
    (
        "SI",
        "SVN",
        "slovenia|slowenien|slovenie|eslovenia|slovenie|eslovenia",
    ),
    (
        "SK",
        "SVK",
        "slovakia|slowakei|slovaquie|eslovaquia|slovacchia|slowakije",
    ),
    (
        "US",
        "USA",
        "united states|united states of america|us|vereinigte staaten|etats-unis|estados unidos|stati uniti|verenigde staten",
    ),
    ("AU", "AUS", "australia|australien|australie"),
    (
        "KR",
        "KOR",
        "south korea|korea|sudkorea|coree du sud|corea del sur|corea del sud|zuid-korea|coreia do sul",
    ),
    ("RU", "RUS", "russia|russland|russie|rusia|rusland|russia"),
    (
        "TR",
        "TUR",
        "turkey|turkiye|turkei|turquie|turquia|turchia|turkije",
    ),
    ("UA", "UKR", "ukraine|ucrania|ucraina|oekraine|ucrania"),
    ("AR", "ARG", "argentina|argentinien|argentine|argentinie"),
];

/// The country a value names: an ISO code (two or three letters) or a name in one of the
/// lexicon's languages. Nationality adjectives are not read.
pub fn country_of(v: &str) -> Option<Country> {
    let t = v.trim();
    if t.len() > 40 {
        return None;
    }
    let mut folded = [0u8; MAX_KEY * 2];
    let mut len = 0;
    for c in t.chars() {
        if c == ' ' || c == '-' {
            folded[len] = c as u8;
            len += 1;
        } else {
            fold(c, &mut folded, &mut len);
        }
    }
    let f = std::str::from_utf8(&folded[..len]).ok()?;
    let index = country_index();
    let mut lower = [0u8; 3];
    let code = match t.len() {
        n @ (2 | 3) => {
            for (l, c) in lower.iter_mut().zip(t.bytes()) {
                *l = c.to_ascii_lowercase();
            }
            let lower = std::str::from_utf8(&lower[..n]).ok()?;
            let table = if n == 2 { &index.alpha2 } else { &index.alpha3 };
            table.get(lower).copied()
        }
        _ => None,
    };
    // The first row of the table that matches, as a scan of it would find.
    let row = match (code, index.names.get(f).copied()) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Country::parse(COUNTRIES[row].0).ok()
}

/// [`COUNTRIES`] indexed by lower-case ISO code and by folded name: row numbers.
struct CountryIndex {
    alpha2: rustc_hash::FxHashMap<String, usize>,
    alpha3: rustc_hash::FxHashMap<String, usize>,
    names: rustc_hash::FxHashMap<&'static str, usize>,
}

fn country_index() -> &'static CountryIndex {
    static INDEX: std::sync::OnceLock<CountryIndex> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index = CountryIndex {
            alpha2: Default::default(),
            alpha3: Default::default(),
            names: Default::default(),
        };
        for (row, (a2, a3, names)) in COUNTRIES.iter().enumerate() {
            index.alpha2.entry(a2.to_ascii_lowercase()).or_insert(row);
            index.alpha3.entry(a3.to_ascii_lowercase()).or_insert(row);
            for name in names.split('|') {
                index.names.entry(name).or_insert(row);
            }
        }
        index
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_seven_languages() {
        for (key, field) in [
            ("firstName", F::Is(C::Name)),
            ("last_name", F::Is(C::Name)),
            ("Nachname", F::Is(C::Name)),
            ("prénom", F::Is(C::Name)),
            ("apellidos", F::Is(C::Name)),
            ("cognome", F::Is(C::Name)),
            ("achternaam", F::Is(C::Name)),
            ("sobrenome", F::Is(C::Name)),
            ("customer_name", F::GenericName),
            ("Straße", F::Is(C::Address)),
            ("code_postal", F::Is(C::Address)),
            ("indirizzo", F::Is(C::Address)),
            ("huisnummer", F::Is(C::Address)),
            ("endereço", F::Is(C::Address)),
            ("billingAddress", F::Is(C::Address)),
            ("Staatsangehörigkeit", F::Citizenship),
            ("nacionalidad", F::Citizenship),
            ("country", F::AddressCountry),
            ("date_of_birth", F::Is(C::DateOfBirth)),
            ("Geburtsdatum", F::Is(C::DateOfBirth)),
            ("data_de_nascimento", F::Is(C::DateOfBirth)),
            ("geo_lat", F::Coordinate),
            ("diagnosis", F::Is(C::Health)),
            ("Krankheiten", F::Is(C::Health)),
            ("maladie_chronique", F::Is(C::Health)),
            ("genetic_markers", F::Is(C::Genetic)),
            ("fingerprintHash", F::Is(C::Biometric)),
            ("religione", F::Is(C::Religion)),
            ("ethnic_origin", F::Is(C::Ethnicity)),
            ("race", F::Is(C::Ethnicity)),
            ("partido_politico", F::Is(C::Political)),
            ("trade_union_member", F::Is(C::Union)),
            ("Gewerkschaft", F::Is(C::Union)),
            ("sexual_orientation", F::Is(C::SexLife)),
            ("orientação_sexual", F::Is(C::SexLife)),
            ("criminal_record", F::Is(C::Criminal)),
            ("casier_judiciaire", F::Is(C::Criminal)),
            ("strafblad", F::Is(C::Criminal)),
            ("telefonnummer", F::Phone),
            ("steuer_id", F::NationalId),
            ("codice_fiscale", F::NationalId),
        ] {
            assert_eq!(classify(key), Some(field), "{key}");
        }
        for key in [
            "filename",
            "file_name",
            "hostname",
            "trace",
            "rename",
            "orientation",
            "status",
            "third_party",
            "ip_address",
            "unionType",
            "capacity",
            "portal",
            "latency",
        ] {
            assert_eq!(classify(key), None, "{key}");
        }
    }

    #[test]
    fn values_name_their_country() {
        for (v, c) in [
            ("DE", "DE"),
            ("deu", "DE"),
            ("Deutschland", "DE"),
            ("España", "ES"),
            ("Pays-Bas", "NL"),
            ("Brasil", "BR"),
        ] {
            assert_eq!(
                country_of(v).map(|c| c.to_string()).as_deref(),
                Some(c),
                "{v}"
            );
        }
        assert_eq!(country_of("Atlantis"), None);
        assert_eq!(country_of("ok"), None);
    }

    #[test]
    fn ascii_names_are_told_as_characters_tell_them() {
        let mut r = crate::inspect::corpus::values::Rng::new(9);
        let pieces = [
            "Jane", "doe", "O'", "Neil", "-", "'", ".", " ", "  ", "\t", "\x0b", "\r\n", "J", "x",
            "McD", "2", ",", "Ana-", "Maria", "A", "é",
        ];
        let named = crate::inspect::corpus::values::agree(
            50_000,
            |_| r.pieces(&pieces, 0, 8),
            looks_like_person_name,
            person_name_chars,
        );
        assert!(named > 500, "{named}");
    }

    #[test]
    fn name_and_coordinate_shapes() {
        assert!(looks_like_person_name("Jane Doe"));
        assert!(looks_like_person_name("José María García-López"));
        assert!(!looks_like_person_name("widget pro 2"));
        assert!(!looks_like_person_name("checkout"));
        assert!(precise_coordinate("52.5200"));
        assert!(precise_coordinate("52.52001, 13.40495"));
        assert!(!precise_coordinate("52.5"));
        assert!(!precise_coordinate("north"));
    }
}
