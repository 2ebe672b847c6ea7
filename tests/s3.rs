//! S3 sources, exports and the bucket layout, against moto_server (a real S3 wire protocol).

use futures::stream::{self, StreamExt};

use crate::cli_text as text;
use crate::support::services::{aws, moto_env, unique_bucket};
use crate::support::{stockload, TestDb};
use stockload::sample::{generate, SampleSpec};

async fn upload_folder(client: &aws_sdk_s3::Client, bucket: &str, root: &std::path::Path) {
    let mut files = Vec::new();
    for folder in ["Stocks", "CompanyNames"] {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let key = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
            files.push((key, std::fs::read(&path).unwrap()));
        }
    }
    stream::iter(files)
        .map(|(key, body)| async move {
            client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test]
async fn a_1000_file_batch_from_s3_loads_the_same_table_as_from_disk() {
    let aws = aws().await;
    let bucket = unique_bucket("source");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = SampleSpec {
        files: 1000,
        listed: 1000,
        rows: 15,
        faulty: true,
        seed: 3,
    };
    let batch = generate(dir.path(), &spec).unwrap();
    upload_folder(&aws.s3, &bucket, dir.path()).await;

    let local = TestDb::new().await;
    let from_disk = stockload()
        .args(["load", "--json", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .env("DATABASE_URL", &local.url)
        .output()
        .unwrap();
    assert!(from_disk.status.success(), "{}", text(&from_disk));

    let remote = TestDb::new().await;
    // AWS_ENDPOINT_URL alone (set by moto_env) is enough: path-style addressing follows.
    let from_s3 = moto_env(&mut stockload())
        .args(["load", "--json", "--concurrency", "32", "--source"])
        .arg(format!("s3://{bucket}/Stocks/"))
        .arg("--companies")
        .arg(format!("s3://{bucket}/CompanyNames/top_companies.txt"))
        .env("DATABASE_URL", &remote.url)
        .output()
        .unwrap();
    assert!(from_s3.status.success(), "{}", text(&from_s3));

    let disk: serde_json::Value = serde_json::from_slice(&from_disk.stdout).unwrap();
    let s3: serde_json::Value = serde_json::from_slice(&from_s3.stdout).unwrap();
    for field in [
        "files_listed",
        "files_loaded",
        "files_skipped",
        "rows_read",
        "rows_loaded",
        "rows_rejected",
    ] {
        assert_eq!(disk[field], s3[field], "{field}");
    }
    assert_eq!(s3["files_listed"], 1005);
    assert_eq!(s3["rows_loaded"], 1000 * 15 + 5);
    let reasons: Vec<_> = s3["skipped_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["file"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        reasons.contains(&(
            format!("s3://{bucket}/Stocks/ZMISSING.csv"),
            "file not found".into()
        )),
        "{reasons:?}"
    );
    let rows = remote.rows().await;
    assert_eq!(rows.len(), 15_005);
    assert_eq!(rows, local.rows().await);
}

#[tokio::test]
async fn a_missing_bucket_fails_the_run_clearly_and_writes_nothing() {
    let db = TestDb::new().await;
    let bucket = unique_bucket("missing");
    let index = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(index.path(), "AAPL.csv").unwrap();
    let output = moto_env(&mut stockload())
        .args(["load", "--source"])
        .arg(format!("s3://{bucket}/Stocks/"))
        .arg("--companies")
        .arg(index.path())
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("S3 list s3://{bucket}/Stocks/: NoSuchBucket")),
        "{all}"
    );
    assert!(
        !all.contains("testing"),
        "credentials must not be printed: {all}"
    );
    assert_eq!(db.rows().await.len(), 0);
    assert_eq!(
        db.scalar("SELECT status FROM load_runs").await,
        Some("failed".into())
    );

    let output = moto_env(&mut stockload())
        .args(["load", "--source", "/tmp", "--companies"])
        .arg(format!("s3://{bucket}/CompanyNames/top_companies.txt"))
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(text(&output).contains("NoSuchBucket"), "{}", text(&output));
}

#[tokio::test]
async fn export_to_s3_matches_the_local_export() {
    let aws = aws().await;
    let bucket = unique_bucket("output");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let batch = generate(
        dir.path(),
        &SampleSpec {
            files: 30,
            listed: 30,
            rows: 40,
            faulty: false,
            seed: 9,
        },
    )
    .unwrap();
    let load = stockload()
        .args(["load", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(load.status.success(), "{}", text(&load));
    let local_file = dir.path().join("historical_stock_data.csv");
    let local = stockload()
        .args(["export", "--to"])
        .arg(&local_file)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(local.status.success(), "{}", text(&local));
    let key = "Output/historical_stock_data.csv";
    let remote = moto_env(&mut stockload())
        .args(["export", "--to", &format!("s3://{bucket}/{key}")])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(remote.status.success(), "{}", text(&remote));
    let object = aws
        .s3
        .get_object()
        .bucket(&bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let body = object.body.collect().await.unwrap().to_vec();
    let expected = std::fs::read(&local_file).unwrap();
    assert_eq!(body.len(), expected.len());
    assert!(body == expected);
    assert_eq!(String::from_utf8(body).unwrap().lines().count(), 30 * 40);
}

#[tokio::test]
async fn large_uploads_go_multipart_and_arrive_whole() {
    let aws = aws().await;
    let bucket = unique_bucket("multipart");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    // 20 MiB + a bit, written in odd-sized chunks: three parts.
    let data: Vec<u8> = (0..(20 * 1024 * 1024 + 12345))
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let mut upload = stockload::storage::s3::Upload::new(&aws.s3, &bucket, "big.bin");
    for chunk in data.chunks(1_000_003) {
        upload.write(chunk).await.unwrap();
    }
    upload.finish().await.unwrap();
    let object = aws
        .s3
        .get_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .unwrap();
    assert!(
        object.e_tag().unwrap_or_default().contains("-3"),
        "{:?}",
        object.e_tag()
    );
    let body = object.body.collect().await.unwrap().to_vec();
    assert!(body == data, "multipart body differs");
}

#[tokio::test]
async fn bucket_init_lays_out_the_source_bucket_and_can_run_twice() {
    let aws = aws().await;
    let bucket = unique_bucket("layout");
    for _ in 0..2 {
        let output = moto_env(&mut stockload())
            .args(["bucket", "init", &format!("s3://{bucket}")])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    let keys: Vec<String> = stockload::storage::Storage::new(Some(aws.clone()))
        .list(
            &stockload::storage::Location::parse(&format!("s3://{bucket}")).unwrap(),
            "",
        )
        .await
        .unwrap()
        .into_iter()
        .map(|listed| match listed.location {
            stockload::storage::Location::S3 { key, .. } => key,
            other => panic!("{other}"),
        })
        .collect();
    for folder in stockload::bucket::FOLDERS {
        assert!(keys.contains(&folder.to_string()), "{keys:?}");
    }
    let script = aws
        .s3
        .get_object()
        .bucket(&bucket)
        .key("Scripts/insert_query.sql")
        .send()
        .await
        .unwrap();
    let text = script.body.collect().await.unwrap().to_vec();
    assert_eq!(
        text,
        stockload::transform::embedded("insert_query.sql")
            .unwrap()
            .as_bytes()
    );
    assert!(
        keys.contains(&"Scripts/recompute_changes.sql".to_string()),
        "{keys:?}"
    );
}
