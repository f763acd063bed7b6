//! Primality for Maglev table sizes (at most 2^24, so trial division is enough).

/// Whether `n` is prime. Exact for every `n`; meant for table sizes, where `n`
/// is at most [`MAX_TABLE_SIZE`](crate::MAX_TABLE_SIZE) and this takes microseconds.
pub(crate) fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut divisor = 5u64;
    while divisor.saturating_mul(divisor) <= n {
        if n.is_multiple_of(divisor) || n.is_multiple_of(divisor + 2) {
            return false;
        }
        divisor += 6;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_and_composites() {
        let primes = [2, 3, 5, 7, 11, 13, 65_537, 251, 16_777_213];
        let composites = [0, 1, 4, 9, 25, 49, 65_536, 65_535, 16_777_216, 10_403];
        for n in primes {
            assert!(is_prime(n), "{n} is prime");
        }
        for n in composites {
            assert!(!is_prime(n), "{n} is not prime");
        }
    }
}
