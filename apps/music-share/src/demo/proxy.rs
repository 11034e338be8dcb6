//! The demo's flaky network for the messaging mode's phones: a loopback proxy in
//! front of each Lapis port the phones use, which cuts every connection after a
//! random number of bytes — mid-request, mid-frame, whatever was in flight — so the
//! clients' reconnects and the phones' retries really happen, against the real
//! server, beside the per-attempt faults the phones draw themselves. (A byte budget
//! rather than a lifetime, so the cuts come with the load at any size of burst.) A
//! "blip" cuts every connection open at that moment.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Starts a proxy to `target` on a free loopback port; each connection through it
/// carries between `fewest` and `most` bytes (both ways together), then is cut.
/// Returns the port; `cut` counts the connections it cut.
pub async fn start(target: SocketAddr, seed: u64, fewest: usize, most: usize, cut: Arc<AtomicUsize>, blip: watch::Receiver<u64>) -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
    tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else { continue };
            let budget = rng.lock().gen_range(fewest..=most);
            let (cut, mut blip) = (cut.clone(), blip.clone());
            blip.mark_unchanged();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(target).await else { return };
                let cutoff = tokio::select! {
                    by_budget = relay(inbound, outbound, budget) => by_budget,
                    // A blip cuts; once nobody can blip any more, nothing does.
                    _ = async { if blip.changed().await.is_err() { std::future::pending::<()>().await } } => true,
                };
                if cutoff {
                    cut.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    Ok(port)
}

/// Copies both ways until either side closes (`false`) or `budget` bytes have gone
/// through (`true`: both ends are dropped, mid-stream).
async fn relay(a: TcpStream, b: TcpStream, mut budget: usize) -> bool {
    let (mut ar, mut aw) = a.into_split();
    let (mut br, mut bw) = b.into_split();
    let (mut up, mut down) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    loop {
        let (n, to) = tokio::select! {
            r = ar.read(&mut up) => match r { Ok(0) | Err(_) => return false, Ok(n) => (n, 0) },
            r = br.read(&mut down) => match r { Ok(0) | Err(_) => return false, Ok(n) => (n, 1) },
        };
        // Past the budget, only the part that fits goes through.
        let pass = n.min(budget);
        let written = if to == 0 { forward(&mut bw, &up[..pass]).await } else { forward(&mut aw, &down[..pass]).await };
        if !written {
            return false;
        }
        budget -= pass;
        if budget == 0 {
            return true;
        }
    }
}

async fn forward(w: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) -> bool {
    w.write_all(bytes).await.is_ok()
}
