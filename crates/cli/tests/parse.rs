//! The command line's definition: clap's own consistency check, the flags and defaults of every
//! command, and the exit codes of the built binary for usage errors and local commands (no
//! bureau needs to run for any of these).

use std::process::Command as Process;

use clap::{CommandFactory, Parser};
use yibao_cli::args::{
    Bureau, ChannelArg, Cli, ClockCommand, Command, DEFAULT_IN, DEFAULT_OUT, FlowChoice,
    LedgerCommand, PeriodArg, PersonCommand, SchemeArg, StateArg,
};
use yibao_cli::commands::apply_command;
use yibao_cli::connect::Endpoints;
use yibao_domain::population::Flow;
use yibao_harness::population::persons_of_flow;

fn parse(line: &str) -> Cli {
    Cli::try_parse_from(line.split_whitespace()).unwrap_or_else(|error| panic!("{line}: {error}"))
}

fn usage_error(line: &str) -> clap::Error {
    Cli::try_parse_from(line.split_whitespace()).expect_err(line)
}

#[test]
fn the_command_definition_is_valid() {
    Cli::command().debug_assert();
}

#[test]
fn endpoints_default_to_the_local_pair_and_json_is_off() {
    let cli = parse("yibao status T-1");
    // A developer's shell may point YIBAO_OUT / YIBAO_IN elsewhere; the default is what is
    // tested, so only when they are unset.
    if std::env::var_os("YIBAO_OUT").is_none() {
        assert_eq!(cli.out_endpoint, DEFAULT_OUT);
    }
    if std::env::var_os("YIBAO_IN").is_none() {
        assert_eq!(cli.in_endpoint, DEFAULT_IN);
    }
    assert!(!cli.json);
    match cli.command {
        Command::Status(args) => {
            assert_eq!(args.transfer_id, "T-1");
            assert_eq!(args.bureau, Bureau::In);
        }
        other => panic!("parsed {other:?}"),
    }
}

#[test]
fn global_flags_work_before_and_after_the_command() {
    let cli =
        parse("yibao --json --out http://127.0.0.1:7001 watch T-2 --in http://127.0.0.1:7002");
    assert!(cli.json);
    assert_eq!(cli.out_endpoint, "http://127.0.0.1:7001");
    assert_eq!(cli.in_endpoint, "http://127.0.0.1:7002");
    assert!(matches!(cli.command, Command::Watch(_)));
    assert!(parse("yibao ledger check --json").json);
}

#[test]
fn apply_takes_every_flag() {
    let cli = parse(
        "yibao apply --certno 150102197001010018 --name 王伟 --from 150100 --to 410100 --at out \
         --bank-account 6222000000000000001 --bank-name 中国工商银行 --retiree-payout \
         --channel counter --request-id key-1 --scheme-at-in resident",
    );
    let Command::Apply(args) = cli.command else {
        panic!("not apply");
    };
    assert_eq!(args.certno, "150102197001010018");
    assert_eq!(args.name, "王伟");
    assert_eq!((args.from.as_str(), args.to.as_str()), ("150100", "410100"));
    assert_eq!(args.at, Bureau::Out);
    assert_eq!(args.bank_account.as_deref(), Some("6222000000000000001"));
    assert_eq!(args.bank_name.as_deref(), Some("中国工商银行"));
    assert!(args.retiree_payout);
    assert_eq!(args.channel, ChannelArg::Counter);
    assert_eq!(args.request_id.as_deref(), Some("key-1"));
    assert_eq!(args.scheme_at_in, Some(SchemeArg::Resident));
    assert!(
        Cli::try_parse_from(
            "yibao apply --certno 150102197001010018 --name 王伟 --from 150100 --to 410100 --at out"
                .split(' ')
        )
        .is_err(),
        "an application at transfer-out names the scheme the person joins"
    );
}

#[test]
fn apply_defaults_to_the_transfer_in_bureau_online() {
    let cli = parse("yibao apply --certno X --name N --from 150100 --to 540100");
    let Command::Apply(args) = cli.command else {
        panic!("not apply");
    };
    assert_eq!(args.at, Bureau::In);
    assert_eq!(args.channel, ChannelArg::Online);
    assert!(args.bank_account.is_none() && !args.retiree_payout);
}

#[test]
fn a_bank_account_needs_a_bank_name_and_the_other_way_round() {
    let base = "yibao apply --certno X --name N --from 150100 --to 410100";
    let error = usage_error(&format!("{base} --bank-account 6222"));
    assert_eq!(
        error.kind(),
        clap::error::ErrorKind::MissingRequiredArgument
    );
    assert_eq!(error.exit_code(), 2);
    usage_error(&format!("{base} --bank-name ICBC"));
}

#[test]
fn apply_without_its_required_flags_is_a_usage_error() {
    let error = usage_error("yibao apply --certno X");
    assert_eq!(error.exit_code(), 2);
}

#[test]
fn account_needs_a_bureau_and_certificate_and_verify_default_to_transfer_out() {
    usage_error("yibao account 150102197001010018");
    let Command::Account(args) = parse("yibao account --bureau out 150102197001010018").command
    else {
        panic!("not account");
    };
    assert_eq!(
        (args.certno.as_str(), args.bureau),
        ("150102197001010018", Bureau::Out)
    );
    usage_error("yibao certificate 150102197001010018");
    let Command::Certificate(args) =
        parse("yibao certificate 150102197001010018 --name 张三").command
    else {
        panic!("not certificate");
    };
    assert_eq!((args.bureau, args.name.as_str()), (Bureau::Out, "张三"));
    let Command::Verify(args) = parse("yibao verify ABCDEFGH12345678 --bureau in").command else {
        panic!("not verify");
    };
    assert_eq!(
        (args.code.as_str(), args.bureau),
        ("ABCDEFGH12345678", Bureau::In)
    );
}

#[test]
fn an_unknown_bureau_is_a_usage_error() {
    let error = usage_error("yibao status T-1 --bureau sideways");
    assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
}

#[test]
fn persons_takes_a_flow_name_or_list() {
    let Command::Persons(args) = parse("yibao persons --flow not-connected").command else {
        panic!("not persons");
    };
    assert_eq!(args.flow, FlowChoice::Flow(Flow::NotConnected));
    assert_eq!((args.count, args.seed), (5, 2026));
    let Command::Persons(args) = parse("yibao persons --flow list --count 2 --seed 7").command
    else {
        panic!("not persons");
    };
    assert_eq!(args.flow, FlowChoice::List);
    assert_eq!((args.count, args.seed), (2, 7));
    let error = usage_error("yibao persons --flow sideways");
    assert!(error.to_string().contains("cross-province"), "{error}");
    usage_error("yibao persons");
}

#[test]
fn every_flow_name_parses() {
    for flow in Flow::ALL {
        let Command::Persons(args) =
            parse(&format!("yibao persons --flow {}", flow.name())).command
        else {
            panic!("not persons");
        };
        assert_eq!(args.flow, FlowChoice::Flow(flow));
    }
}

#[test]
fn clock_advance_takes_a_positive_number_of_days() {
    let Command::Clock(ClockCommand::Advance(args)) =
        parse("yibao clock advance --days 10").command
    else {
        panic!("not clock advance");
    };
    assert_eq!(args.days, 10);
    usage_error("yibao clock advance --days 0");
    usage_error("yibao clock advance --days -1");
    usage_error("yibao clock advance");
    assert!(matches!(
        parse("yibao clock show").command,
        Command::Clock(ClockCommand::Show)
    ));
}

#[test]
fn ledger_check_parses() {
    assert!(matches!(
        parse("yibao ledger check").command,
        Command::Ledger(LedgerCommand::Check)
    ));
    usage_error("yibao ledger");
}

#[test]
fn up_defaults_to_a_demo_population_in_data() {
    let Command::Up(args) = parse("yibao up").command else {
        panic!("not up");
    };
    assert_eq!(args.data_dir, std::path::PathBuf::from("data"));
    assert_eq!((args.seed, args.persons), (2026, 1300));
    assert!(args.directory.is_none());
    let Command::Up(args) =
        parse("yibao up --data-dir /tmp/d --seed 1 --persons 13 --directory r.toml").command
    else {
        panic!("not up");
    };
    assert_eq!((args.seed, args.persons), (1, 13));
    assert_eq!(args.directory, Some(std::path::PathBuf::from("r.toml")));
}

#[test]
fn the_printed_apply_command_parses_back_to_the_person() {
    let endpoints = Endpoints {
        out: DEFAULT_OUT.to_owned(),
        inn: DEFAULT_IN.to_owned(),
        admin_token: None,
    };
    for flow in Flow::ALL {
        let someone = persons_of_flow(2026, flow, 1, 13)
            .expect("one per flow")
            .remove(0);
        let line = apply_command(&someone, &endpoints);
        let Command::Apply(args) = parse(&line).command else {
            panic!("not apply: {line}");
        };
        assert_eq!(args.certno, someone.certno.expose_unmasked());
        assert_eq!(args.name, someone.name);
        assert_eq!(args.from, someone.out_region.to_string());
        assert_eq!(args.to, someone.in_region.to_string());
        assert_eq!(args.retiree_payout, flow == Flow::RetireePayout);
    }
}

#[test]
fn the_binary_exits_2_on_a_usage_error() {
    let status = Process::new(env!("CARGO_BIN_EXE_yibao"))
        .arg("--no-such-flag")
        .output()
        .expect("runs");
    assert_eq!(status.status.code(), Some(2));
}

#[test]
fn the_binary_prints_one_json_object_per_person() {
    let output = Process::new(env!("CARGO_BIN_EXE_yibao"))
        .args([
            "--json",
            "persons",
            "--flow",
            "cross-province",
            "--count",
            "3",
        ])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(objects.len(), 3);
    assert!(
        objects
            .iter()
            .all(|object| object["flow"] == "cross-province")
    );
}

#[test]
fn the_binary_reports_an_unreachable_bureau_in_one_line_and_exits_1() {
    let output = Process::new(env!("CARGO_BIN_EXE_yibao"))
        .args(["status", "T-1", "--in", "http://127.0.0.1:1"])
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stderr).expect("utf-8");
    assert!(
        text.starts_with("error: cannot connect to transfer-in"),
        "{text}"
    );
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
}

/// The load generator's options from a `yibao load …` command line, as the binary builds them.
fn load_options(line: &str) -> Result<yibao_load::LoadOptions, String> {
    #[derive(Debug, Parser)]
    struct LoadCli {
        #[command(flatten)]
        load: yibao_load::LoadArgs,
    }
    let (cli, named) = yibao_cli::parse_from(line.split_whitespace()).map_err(|e| e.to_string())?;
    let Command::Load(passthrough) = &cli.command else {
        return Err(format!("{line}: not a load command"));
    };
    let endpoints = Endpoints {
        out: cli.out_endpoint.clone(),
        inn: cli.in_endpoint.clone(),
        admin_token: None,
    };
    let args = yibao_cli::load_args(&passthrough.args, &endpoints, named);
    let parsed = LoadCli::try_parse_from(std::iter::once("yibao load".to_owned()).chain(args))
        .map_err(|e| e.to_string())?;
    yibao_load::LoadOptions::try_from(parsed.load).map_err(|e| e.to_string())
}

#[test]
fn yibao_load_drives_the_endpoints_named_by_out_and_in() {
    let options = load_options(
        "yibao load --out http://127.0.0.1:7001 --in http://127.0.0.1:7002 --transfers 5",
    )
    .expect("valid");
    assert!(
        matches!(&options.target, yibao_load::Target::Running { out, inn }
            if out == "http://127.0.0.1:7001" && inn == "http://127.0.0.1:7002"),
        "{:?}",
        options.target
    );
    // Named before the command too (they are global flags).
    let options =
        load_options("yibao --in http://127.0.0.1:7002 load --transfers 5").expect("valid");
    assert!(
        matches!(&options.target, yibao_load::Target::Running { out, inn }
            if out.ends_with(":50051") && inn == "http://127.0.0.1:7002"),
        "{:?}",
        options.target
    );
    // Nothing named: the local pair.
    let options = load_options("yibao load --transfers 5").expect("valid");
    assert!(
        matches!(&options.target, yibao_load::Target::Running { out, inn }
            if out.ends_with(":50051") && inn.ends_with(":50052")),
        "{:?}",
        options.target
    );
    // A spawned pair has its own endpoints: naming one as well is refused.
    let refused =
        load_options("yibao load --spawn --out http://127.0.0.1:7001").expect_err("conflict");
    assert!(refused.contains("--out"), "{refused}");
}

#[test]
fn person_create_takes_a_history_of_periods_and_defaults_its_first_month() {
    let cli = parse(
        "yibao person create --at out --certno 150102198001010014 --name 赵明 --region 150100 \
         --state suspended --period 201507-202606:employee:150100 \
         --period 201201-201506:resident:500000 --balance 1234.56 --arrears 12.00 --retired",
    );
    let Command::Person(PersonCommand::Create(args)) = cli.command else {
        panic!("parsed {:?}", cli.command);
    };
    assert_eq!(args.enrolled.target.at, Bureau::Out);
    assert_eq!(
        args.enrolled.scheme,
        SchemeArg::Employee,
        "the default scheme"
    );
    assert_eq!(args.state, StateArg::Suspended);
    assert_eq!(
        args.period[1],
        PeriodArg {
            from_month: "201201".to_owned(),
            to_month: "201506".to_owned(),
            scheme: SchemeArg::Resident,
            region: "500000".to_owned(),
        }
    );
    let request = yibao_cli::person::creation(&args);
    assert_eq!(
        request.fst_insu_ym, "201201",
        "the earliest period's first month"
    );
    assert_eq!(request.periods.len(), 2);
    assert_eq!(request.personal_account_balance, "1234.56");
    assert_eq!(request.arrears_amount, "12.00");
    assert!(request.retired);
}

#[test]
fn a_malformed_period_and_a_missing_bureau_are_usage_errors() {
    for line in [
        "yibao person create --at out --certno X --name N --region 150100 --period 201507:employee:150100",
        "yibao person create --at out --certno X --name N --region 150100 --period 201507-202606:worker:150100",
        "yibao person create --at out --certno X --name N --region 150100 --period 201507-202606:employee",
        "yibao person stop --certno X --from 202607",
        "yibao person pay --at in --certno X --back-pay 202601",
    ] {
        let error = usage_error(line);
        assert_eq!(error.exit_code(), 2, "{line}: {error}");
    }
}

#[test]
fn person_enrol_stop_pay_and_retire_parse() {
    let cli = parse("yibao person enrol --at in --certno X --name N --region 540100 --from 202608");
    assert!(
        matches!(cli.command, Command::Person(PersonCommand::Enrol(ref args))
        if args.enrolled.target.at == Bureau::In && args.from == "202608")
    );
    let cli = parse("yibao person stop --at out --certno X --from 202607 --json");
    assert!(cli.json);
    assert!(matches!(
        cli.command,
        Command::Person(PersonCommand::Stop(_))
    ));
    let cli = parse("yibao person pay --at out --certno X --amount 10.50 --back-pay 202601-202603");
    let Command::Person(PersonCommand::Pay(args)) = cli.command else {
        panic!("parsed {:?}", cli.command);
    };
    let request = yibao_cli::person::payment(&args);
    assert_eq!(request.amount, "10.50");
    assert_eq!(
        (
            request.back_pay_from_month.as_str(),
            request.back_pay_to_month.as_str()
        ),
        ("202601", "202603")
    );
    let everything = yibao_cli::person::payment(
        &match parse("yibao person pay --at out --certno X").command {
            Command::Person(PersonCommand::Pay(args)) => args,
            other => panic!("parsed {other:?}"),
        },
    );
    assert_eq!(everything.amount, "", "empty: all that is owed");
    assert!(matches!(
        parse("yibao person retire --at out --certno X --from 202607").command,
        Command::Person(PersonCommand::Retire(_))
    ));
}
