//! The command line of `ehload`: `Args`, its defaults, `parse_args` and `usage`.

#[derive(Clone, Debug)]
pub struct Args {
    pub mode: String,
    pub port: u16,
    pub hub: String,
    pub partitions: u32,
    /// `partition` (each producer sends to `<hub>/Partitions/<i mod partitions>`) or
    /// `hub` (every producer sends to `<hub>`; Lapis spreads round robin).
    pub target: String,
    pub producers: usize,
    /// Batches a producer keeps in flight (sent, not yet accepted).
    pub inflight: usize,
    /// Events per batch message (format 0x80013700).
    pub batch: usize,
    pub size: usize,
    /// Events per second over all producers; 0 = as fast as they are accepted.
    pub rate: f64,
    /// Whether a consumer reads every partition (from `@latest`, attached before
    /// the producers start).
    pub consumers: bool,
    /// Where consumers start: `@latest` (attached before the producers start) or
    /// `-1` (the oldest retained event: a catch-up read of what is stored).
    pub position: String,
    pub prefetch: u32,
    pub duration: f64,
    pub warmup: f64,
    /// fill: stop once this many event-body bytes were accepted (or at --timeout).
    pub bytes: f64,
    pub timeout: f64,
    // disk mode
    pub dir: String,
    pub sizes: Vec<usize>,
    pub writers: Vec<usize>,
    /// `append` (a growing file, as Lapis's segments), `overwrite` (a preallocated
    /// file written in place) or `both`.
    pub layout: String,
}

pub fn usage() -> ! {
    eprintln!(
        "usage: ehload --mode load --port PORT [--hub NAME] [--partitions N] [--target partition|hub] [--producers P] \
         [--inflight K] [--batch B] [--size BYTES] [--rate EVENTS_PER_S] [--consumers 0|1] [--position @latest|-1] [--prefetch N] \
         [--duration S] [--warmup S]\n       \
         ehload --mode fill --port PORT [--hub NAME] [--partitions N] [--producers P] [--inflight K] [--batch B] \
         [--size BYTES] --bytes TOTAL [--timeout S]\n       \
         ehload --mode wait --port PORT [--hub NAME] [--timeout S]\n       \
         ehload --mode disk --dir DIR --sizes B1,B2,... [--writers 1,4] [--duration S] [--layout append|overwrite|both]"
    );
    std::process::exit(2)
}

fn list(flag: &str, v: &str) -> Vec<usize> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| crate::flags::number(flag, s, usage) as usize)
        .filter(|n| *n > 0)
        .collect()
}

pub fn parse_args() -> Args {
    let mut a = Args {
        mode: String::new(),
        port: 0,
        hub: "bench".into(),
        partitions: 4,
        target: "partition".into(),
        producers: 8,
        inflight: 2,
        batch: 100,
        size: 1024,
        rate: 0.0,
        consumers: false,
        position: "@latest".into(),
        prefetch: 300,
        duration: 5.0,
        warmup: 1.0,
        bytes: 0.0,
        timeout: 600.0,
        dir: String::new(),
        sizes: vec![4096, 65536, 1 << 20],
        writers: vec![1],
        layout: "append".into(),
    };
    for (flag, val) in crate::flags::pairs(usage) {
        let num = |v: &str| -> f64 { crate::flags::number(&flag, v, usage) };
        match flag.as_str() {
            "--mode" => a.mode = val,
            "--port" => a.port = num(&val) as u16,
            "--hub" => a.hub = val,
            "--partitions" => a.partitions = (num(&val) as u32).max(1),
            "--target" => a.target = val,
            "--producers" => a.producers = num(&val) as usize,
            "--inflight" => a.inflight = (num(&val) as usize).max(1),
            "--batch" => a.batch = (num(&val) as usize).max(1),
            "--size" => a.size = (num(&val) as usize).max(8),
            "--rate" => a.rate = num(&val).max(0.0),
            "--consumers" => a.consumers = num(&val) != 0.0,
            "--position" => a.position = val,
            "--prefetch" => a.prefetch = (num(&val) as u32).max(1),
            "--duration" => a.duration = num(&val),
            "--warmup" => a.warmup = num(&val),
            "--bytes" => a.bytes = num(&val),
            "--timeout" => a.timeout = num(&val),
            "--dir" => a.dir = val,
            "--sizes" => a.sizes = list(&flag, &val),
            "--writers" => a.writers = list(&flag, &val),
            "--layout" => a.layout = val,
            _ => {
                eprintln!("unknown flag {flag}");
                usage()
            }
        }
    }
    if a.mode != "disk" && a.port == 0 {
        eprintln!("--port is required");
        usage()
    }
    if a.producers == 0 && !(a.mode == "load" && a.consumers) && a.mode != "wait" && a.mode != "disk" {
        eprintln!("--producers 0 only with --mode load --consumers 1 (a read of what is stored)");
        usage()
    }
    if a.target != "partition" && a.target != "hub" {
        eprintln!("--target is partition or hub");
        usage()
    }
    a
}
