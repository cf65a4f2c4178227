//! The command line: `serve`, `check`, `migrate`, `purge` and `dmarc import`, with every flag and its
//! environment variable.
//!
//! The service's flags are made from the settings' definitions in [`crate::config`], which
//! layers them over the TOML file and the defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::config::{SETTINGS, Setting, Shape};

#[derive(Parser, Debug)]
#[command(
    name = "authcheck",
    version,
    about = "A self-hosted email-authentication tester: send mail to spf@ or dkim@ and read the verdict",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the tester: the SMTP listener and the results site.
    Serve(ServiceArgs),
    /// Verify one message file and print the report.
    Check(CheckArgs),
    /// Run the database migrations and exit.
    Migrate(ServiceArgs),
    /// Delete results and DMARC reports older than their retention now, and exit.
    Purge(ServiceArgs),
    /// DMARC reports.
    #[command(subcommand)]
    Dmarc(DmarcCommand),
}

#[derive(Subcommand, Debug)]
pub enum DmarcCommand {
    /// Store DMARC report files (XML, gzip, zip), .eml messages, mbox files and Maildir
    /// folders, and print how many were imported, duplicates and rejected (with reasons).
    Import(ImportArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Files and folders to import.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Do not look up the names (PTR and organizational domain) of the reports' source
    /// addresses, as the service does for reports it receives: for a machine without DNS.
    #[arg(long)]
    pub no_lookups: bool,
}

/// Settings of the service as given on the command line or in the environment: one flag and
/// one `AUTHCHECK_*` variable per entry of [`SETTINGS`], a flag winning over the environment.
/// [`crate::config::Settings::load`] layers them over the `--config` file and the defaults.
#[derive(Debug, Default, Clone)]
pub struct ServiceArgs {
    /// The TOML file with settings.
    pub config: Option<PathBuf>,
    /// The values given, by setting name; absent when neither the flag nor the variable is set.
    pub given: BTreeMap<&'static str, Vec<String>>,
}

const CONFIG: &str = "config";

impl Args for ServiceArgs {
    fn augment_args(command: clap::Command) -> clap::Command {
        let config = Arg::new(CONFIG)
            .long("config")
            .env("AUTHCHECK_CONFIG")
            .hide_env_values(true)
            .value_name("PATH")
            .value_parser(clap::value_parser!(PathBuf))
            .help("TOML file with settings, keyed by the names in the README's settings table (smtp_listen, domains, dns_servers, ...)");
        command
            .arg(config)
            .args(SETTINGS.iter().map(setting_arg))
            .after_help(
                "Each setting is read from its flag, else its AUTHCHECK_* environment variable, \
                 else the --config file, else its default.",
            )
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// The flag and environment variable of one setting. Values stay text here: the settings
/// parse them, so an error names the setting whichever layer it came from.
fn setting_arg(setting: &'static Setting) -> Arg {
    let arg = Arg::new(setting.name)
        .long(setting.flag)
        .env(setting.env)
        // `--help` would otherwise print the environment's values, passwords included.
        .hide_env_values(true)
        .value_name(setting.value_name)
        .value_parser(clap::value_parser!(String))
        .help(format!(
            "{} [default: {}]",
            setting.help_text(),
            setting.default_text().replace('`', "")
        ));
    match setting.shape {
        Shape::List => arg.action(ArgAction::Append).value_delimiter(','),
        Shape::One | Shape::Optional => arg.action(ArgAction::Set),
    }
}

impl FromArgMatches for ServiceArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let given = SETTINGS
            .iter()
            .filter_map(|setting| {
                let values = matches.get_many::<String>(setting.name)?;
                Some((setting.name, values.cloned().collect()))
            })
            .collect();
        Ok(ServiceArgs {
            config: matches.get_one::<PathBuf>(CONFIG).cloned(),
            given,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The message file (RFC 5322, as received); `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: String,

    /// The SMTP client's IP address; without it SPF is reported as not checked.
    #[arg(long, value_name = "IP")]
    pub ip: Option<IpAddr>,

    /// The HELO/EHLO name the client gave.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub helo: String,

    /// The MAIL FROM address; empty (or `<>`) for the null reverse-path.
    #[arg(long = "mail-from", value_name = "ADDR", default_value = "")]
    pub mail_from: String,

    /// MAIL FROM's BODY= parameter as the client sent it; `none` for no parameter, which
    /// declares a 7-bit message [default: not known, so 8-bit content is not questioned].
    #[arg(long, value_enum, value_name = "TYPE")]
    pub body: Option<BodyArg>,

    /// Nameserver to ask, ADDR:PORT; repeat for several [default: the system resolver].
    #[arg(long = "dns-server", value_name = "ADDR:PORT")]
    pub dns_servers: Vec<SocketAddr>,

    /// The authserv-id for Authentication-Results [default: this machine's host name].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// When to colour the output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Print the message as the tester delivers it to MAILBOX (its verdict in front of the
    /// Subject, the Authentication-Results field on top) instead of the report.
    #[arg(
        long,
        value_enum,
        value_name = "MAILBOX",
        num_args = 0..=1,
        default_missing_value = "spf",
        conflicts_with = "json"
    )]
    pub rewrite: Option<RewriteFor>,
}

/// `check --body`: MAIL FROM's BODY= parameter (RFC 6152).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyArg {
    /// No BODY= parameter.
    None,
    /// BODY=7BIT.
    #[value(name = "7bit")]
    SevenBit,
    /// BODY=8BITMIME.
    #[value(name = "8bitmime")]
    EightBitMime,
}

/// Whose verdict `check --rewrite` puts in the Subject: the `spf@` or the `dkim@` mailbox's.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteFor {
    Spf,
    Dkim,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn list_flags_repeat_and_split_on_commas() {
        let cli = Cli::try_parse_from([
            "authcheck",
            "serve",
            "--domain",
            "a.test,b.test",
            "--domain",
            "c.test",
            "--smtp-listen",
            "127.0.0.1:1",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve: {:?}", cli.command);
        };
        assert_eq!(args.given["domains"], ["a.test", "b.test", "c.test"]);
        assert_eq!(args.given["smtp_listen"], ["127.0.0.1:1"]);
        assert!(!args.given.contains_key("log_format"));
    }
}
