//! The command line of `sbload`: `Args`, its defaults, `parse_args` and `usage`.

#[derive(Clone, Debug)]
pub struct Args {
    pub mode: String,
    pub flavor: String,
    pub port: u16,
    pub queue: String,
    pub senders: usize,
    pub receivers: usize,
    pub prefetch: u32,
    pub duration: f64,
    pub warmup: f64,
    pub size: usize,
    pub count: u64,
    pub timeout: f64,
}

pub fn usage() -> ! {
    eprintln!(
        "usage: sbload --mode load --flavor lapis|rabbitmq --port PORT --queue NAME [--senders S] \
         [--receivers R] [--prefetch N] [--duration S] [--warmup S] [--size BYTES]\n       \
         sbload --mode fill --flavor lapis|rabbitmq --port PORT --queue NAME --count N [--senders S] \
         [--timeout S] [--size BYTES]\n       \
         sbload --mode wait --flavor lapis|rabbitmq --port PORT --queue NAME [--timeout S]"
    );
    std::process::exit(2)
}

pub fn parse_args() -> Args {
    let mut a = Args {
        mode: String::new(),
        flavor: String::new(),
        port: 0,
        queue: "q1".into(),
        senders: 32,
        receivers: 8,
        prefetch: 100,
        duration: 5.0,
        warmup: 1.0,
        size: 1024,
        count: 0,
        timeout: 600.0,
    };
    for (flag, val) in crate::flags::pairs(usage) {
        let num = |v: &str| -> f64 { crate::flags::number(&flag, v, usage) };
        match flag.as_str() {
            "--mode" => a.mode = val,
            "--flavor" => a.flavor = val,
            "--port" => a.port = num(&val) as u16,
            "--queue" => a.queue = val,
            "--senders" => a.senders = num(&val) as usize,
            "--receivers" => a.receivers = num(&val) as usize,
            "--prefetch" => a.prefetch = (num(&val) as u32).max(1),
            "--duration" => a.duration = num(&val),
            "--warmup" => a.warmup = num(&val),
            "--size" => a.size = (num(&val) as usize).max(8),
            "--count" => a.count = num(&val) as u64,
            "--timeout" => a.timeout = num(&val),
            _ => {
                eprintln!("unknown flag {flag}");
                usage()
            }
        }
    }
    if a.port == 0 {
        eprintln!("--port is required");
        usage()
    }
    a
}
