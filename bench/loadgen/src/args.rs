//! The command line: `Args`, its defaults, `parse_args` and `usage`.

use crate::sign::DEV_KEY;

#[derive(Clone, Debug)]
pub struct Args {
    pub mode: String,
    pub endpoint: String,
    pub url: String,
    pub connections: usize,
    pub duration: f64,
    pub warmup: f64,
    pub count: u64,
    pub size: usize,
    pub queue: String,
    pub key: String,
    pub timeout: f64,
    pub expect: Option<u16>,
    pub visibility: u32,
}

pub fn usage() -> ! {
    eprintln!(
        "usage: loadgen --mode put|cycle|fill --endpoint http://127.0.0.1:PORT/devstoreaccount1 \
         [--connections C] [--duration S] [--warmup S] [--count N] [--size BYTES] [--queue NAME] \
         [--key BASE64] [--timeout S]\n       loadgen --mode wait --url http://127.0.0.1:PORT/path \
         [--expect 200] [--timeout S]\n       loadgen --mode ports --count N"
    );
    std::process::exit(2)
}

pub fn parse_args() -> Args {
    let mut a = Args {
        mode: String::new(),
        endpoint: String::new(),
        url: String::new(),
        connections: 32,
        duration: 5.0,
        warmup: 1.0,
        count: 0,
        size: 1024,
        queue: "bench".into(),
        key: DEV_KEY.into(),
        timeout: 600.0,
        expect: None,
        visibility: 30,
    };
    for (flag, val) in crate::flags::pairs(usage) {
        let num = |v: &str| -> f64 { crate::flags::number(&flag, v, usage) };
        match flag.as_str() {
            "--mode" => a.mode = val,
            "--endpoint" => a.endpoint = val,
            "--url" => a.url = val,
            "--connections" => a.connections = num(&val) as usize,
            "--duration" => a.duration = num(&val),
            "--warmup" => a.warmup = num(&val),
            "--count" => a.count = num(&val) as u64,
            "--size" => a.size = num(&val) as usize,
            "--queue" => a.queue = val,
            "--key" => a.key = val,
            "--timeout" => a.timeout = num(&val),
            "--expect" => a.expect = Some(num(&val) as u16),
            "--visibilitytimeout" => a.visibility = num(&val) as u32,
            _ => {
                eprintln!("unknown flag {flag}");
                usage()
            }
        }
    }
    if a.connections == 0 {
        a.connections = 1;
    }
    a
}
