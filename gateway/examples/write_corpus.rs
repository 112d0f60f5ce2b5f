//! Writes the labelled inspection corpus ([`domicile_gateway::inspect::corpus`]) as request
//! bodies, one file each, with a `manifest.tsv` of `FILE<TAB>CONTENT_TYPE` lines: traffic for
//! the profile-guided build (`bench/pgo.sh`) and for trying a route's inspection by hand.
//!
//!     cargo run --release --example write_corpus -- OUT_DIR [SEED] [PER_LOCALE]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: write_corpus OUT_DIR [SEED] [PER_LOCALE]");
        return ExitCode::FAILURE;
    };
    let number = |arg: Option<String>, default: u64| match arg {
        None => Ok(default),
        Some(a) => a.parse::<u64>().map_err(|e| format!("{a}: {e}")),
    };
    let (seed, per_locale) = match (number(args.next(), 7), number(args.next(), 4)) {
        (Ok(s), Ok(n)) => (s, n as usize),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: SEED and PER_LOCALE are numbers: {e}");
            return ExitCode::FAILURE;
        }
    };
    match write(&out, seed, per_locale) {
        Ok(n) => {
            println!("{n} bodies in {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write the corpus to {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write(out: &std::path::Path, seed: u64, per_locale: usize) -> std::io::Result<usize> {
    std::fs::create_dir_all(out)?;
    let corpus = domicile_gateway::inspect::corpus::generate(seed, per_locale);
    let mut manifest = std::fs::File::create(out.join("manifest.tsv"))?;
    for (n, sample) in corpus.samples.iter().enumerate() {
        let name = format!("{n:05}-{}-{}.body", sample.locale, sample.format.as_str());
        std::fs::write(out.join(&name), &sample.body)?;
        writeln!(manifest, "{name}\t{}", sample.content_type)?;
    }
    Ok(corpus.samples.len())
}
