//! `store_batch_size`, read from the Postgres store's own counters.

use std::sync::Arc;

use stream_limit_core::store::postgres::BatchSizes;

/// `store_batch_size`: decisions per Postgres transaction, read from the
/// store's own counters at each scrape (the store counts batches; this
/// crate owns the exposition).
pub(super) struct BatchSizeCollector {
    sizes: Arc<BatchSizes>,
    desc: prometheus::core::Desc,
}

impl BatchSizeCollector {
    const NAME: &'static str = "store_batch_size";
    const HELP: &'static str =
        "Decisions per store transaction (1 when nothing was waiting to travel together).";

    pub(super) fn new(sizes: Arc<BatchSizes>) -> Result<Self, prometheus::Error> {
        let desc = prometheus::core::Desc::new(
            Self::NAME.into(),
            Self::HELP.into(),
            Vec::new(),
            std::collections::HashMap::new(),
        )?;
        Ok(Self { sizes, desc })
    }
}

impl prometheus::core::Collector for BatchSizeCollector {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::proto;
        let mut cumulative = 0;
        let buckets = self
            .sizes
            .buckets()
            .into_iter()
            .map(|(upper, count)| {
                cumulative += count;
                let mut bucket = proto::Bucket::default();
                bucket.set_upper_bound(upper as f64);
                bucket.set_cumulative_count(cumulative);
                bucket
            })
            .collect();
        let mut histogram = proto::Histogram::default();
        histogram.set_bucket(buckets);
        histogram.set_sample_count(cumulative);
        histogram.set_sample_sum(self.sizes.decisions() as f64);
        let mut metric = proto::Metric::default();
        metric.set_histogram(histogram);
        let mut family = proto::MetricFamily::default();
        family.set_name(Self::NAME.into());
        family.set_help(Self::HELP.into());
        family.set_field_type(proto::MetricType::HISTOGRAM);
        family.set_metric(vec![metric]);
        vec![family]
    }
}
