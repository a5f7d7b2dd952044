//! The tray icon, drawn in code: one shape and colour per [`Health`], so the state reads at a glance
//! (and, as a macOS template image, by shape alone): a filled disc (all running), a half-filled ring
//! (degraded), a disc with a cross cut out (failed), an empty ring (daemon down).

use super::model::Health;

/// Icon edge in pixels (tray hosts scale it; 32 looks sharp at 1× and 2×).
pub const SIZE: u32 = 32;

/// RGBA pixels of the icon for `health`. `template`: black shapes only (macOS menu-bar template image).
pub fn pixels(health: Health, template: bool) -> Vec<u8> {
    let colour: [u8; 3] = if template {
        [0, 0, 0]
    } else {
        match health {
            Health::AllRunning => [46, 160, 67],
            Health::Degraded => [219, 154, 4],
            Health::Failed => [207, 34, 46],
            Health::DaemonDown => [128, 128, 128],
        }
    };
    let n = SIZE as f64;
    let c = (n - 1.0) / 2.0;
    let outer = n * 0.44;
    let inner = outer - n * 0.13;
    let mut out = Vec::with_capacity((SIZE * SIZE * 4) as usize);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (dx, dy) = (x as f64 - c, y as f64 - c);
            let d = (dx * dx + dy * dy).sqrt();
            let in_disc = d <= outer;
            let in_ring = in_disc && d >= inner;
            let on = match health {
                Health::AllRunning => in_disc,
                Health::Degraded => in_ring || (in_disc && dx <= 0.0),
                Health::Failed => {
                    let cross = (dx - dy).abs() <= n * 0.08 || (dx + dy).abs() <= n * 0.08;
                    in_disc && !(cross && d < inner)
                }
                Health::DaemonDown => in_ring,
            };
            let [r, g, b] = colour;
            out.extend_from_slice(&[r, g, b, if on { 255 } else { 0 }]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(px: &[u8]) -> usize {
        px.chunks(4).filter(|p| p[3] == 255).count()
    }

    #[test]
    fn every_state_has_its_own_shape() {
        let all = [Health::AllRunning, Health::Degraded, Health::Failed, Health::DaemonDown];
        for (i, a) in all.iter().enumerate() {
            let pa = pixels(*a, true);
            assert_eq!(pa.len(), (SIZE * SIZE * 4) as usize);
            for b in &all[i + 1..] {
                assert_ne!(pa, pixels(*b, true), "{a:?} and {b:?} look the same as templates");
            }
        }
        // The full disc has the most ink, the empty ring the least.
        let count = |h| lit(&pixels(h, false));
        assert!(count(Health::AllRunning) > count(Health::Failed));
        assert!(count(Health::Failed) > count(Health::Degraded));
        assert!(count(Health::Degraded) > count(Health::DaemonDown));
        assert!(count(Health::DaemonDown) > 0);
    }

    #[test]
    fn colours_differ_and_templates_are_black() {
        let first_lit = |px: Vec<u8>| px.chunks(4).find(|p| p[3] == 255).map(|p| [p[0], p[1], p[2]]).unwrap();
        assert_eq!(first_lit(pixels(Health::AllRunning, false)), [46, 160, 67]);
        assert_eq!(first_lit(pixels(Health::Failed, false)), [207, 34, 46]);
        assert_eq!(first_lit(pixels(Health::Failed, true)), [0, 0, 0]);
    }
}
