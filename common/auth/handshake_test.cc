#include "common/auth/handshake.h"

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace procpool {
namespace auth {
namespace {

struct Outcome {
  absl::Status parent;
  absl::Status worker;
};

// Runs both sides in memory, each step's bytes handed to the other side.
Outcome RunBothSides(std::string parent_key, std::string worker_key) {
  absl::StatusOr<Handshake> p =
      Handshake::Start(AuthRole::kParent, parent_key, "the worker daemon");
  absl::StatusOr<Handshake> w =
      Handshake::Start(AuthRole::kWorker, worker_key, "the parent");
  EXPECT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(p->hello().size(), Handshake::kHelloSize);
  absl::StatusOr<std::string> p_proof = p->Prove(w->hello());
  absl::StatusOr<std::string> w_proof = w->Prove(p->hello());
  EXPECT_TRUE(p_proof.ok()) << p_proof.status();
  EXPECT_TRUE(w_proof.ok()) << w_proof.status();
  EXPECT_EQ(p_proof->size(), Handshake::kProofSize);
  const std::string p_verdict = p->Judge(*w_proof);
  const std::string w_verdict = w->Judge(*p_proof);
  return {p->Finish(w_verdict), w->Finish(p_verdict)};
}

TEST(HandshakeTest, SameKeyAuthenticatesBothSides) {
  Outcome o = RunBothSides("s3cret key", "s3cret key");
  EXPECT_TRUE(o.parent.ok()) << o.parent;
  EXPECT_TRUE(o.worker.ok()) << o.worker;
}

TEST(HandshakeTest, WrongKeyIsRefusedOnBothSides) {
  Outcome o = RunBothSides("the parent's key", "the daemon's key");
  EXPECT_TRUE(absl::IsPermissionDenied(o.parent)) << o.parent;
  EXPECT_TRUE(absl::IsPermissionDenied(o.worker)) << o.worker;
  EXPECT_TRUE(absl::StrContains(o.parent.message(),
                                "the worker daemon rejected our key"))
      << o.parent;
  EXPECT_TRUE(absl::StrContains(o.worker.message(), "the parent rejected our key"))
      << o.worker;
  EXPECT_TRUE(absl::StrContains(o.parent.message(), "keys differ")) << o.parent;
}

TEST(HandshakeTest, NoKeyIsRefusedBeforeAnythingIsSent) {
  absl::StatusOr<Handshake> h = Handshake::Start(AuthRole::kParent, "", "x");
  ASSERT_FALSE(h.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(h.status())) << h.status();
  EXPECT_TRUE(absl::StrContains(h.status().message(), "--auth_key_file"))
      << h.status();
}

TEST(HandshakeTest, NoncesAreFresh) {
  absl::StatusOr<Handshake> a = Handshake::Start(AuthRole::kParent, "k", "x");
  absl::StatusOr<Handshake> b = Handshake::Start(AuthRole::kParent, "k", "x");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->hello(), b->hello());
  EXPECT_TRUE(absl::StartsWith(a->hello(), "PPAUTH01"));
}

TEST(HandshakeTest, KeyNeverCrossesTheWire) {
  const std::string key = "a key that must stay home";
  absl::StatusOr<Handshake> p = Handshake::Start(AuthRole::kParent, key, "w");
  absl::StatusOr<Handshake> w = Handshake::Start(AuthRole::kWorker, key, "p");
  ASSERT_TRUE(p.ok() && w.ok());
  absl::StatusOr<std::string> proof = p->Prove(w->hello());
  ASSERT_TRUE(proof.ok());
  const std::string wire = p->hello() + *proof + p->Judge("whatever");
  EXPECT_FALSE(absl::StrContains(wire, key));
}

TEST(HandshakeTest, NotAProcpoolPeerIsRefusedWithAReason) {
  absl::StatusOr<Handshake> h =
      Handshake::Start(AuthRole::kWorker, "k", "the parent 10.0.0.1:5555");
  ASSERT_TRUE(h.ok());
  absl::StatusOr<std::string> proof =
      h->Prove(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n123456789012"));
  ASSERT_FALSE(proof.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(proof.status()));
  EXPECT_TRUE(absl::StrContains(proof.status().message(),
                                "the parent 10.0.0.1:5555 did not start"))
      << proof.status();
  EXPECT_FALSE(h->Prove("PPAUTH01short").ok());
}

// A peer that sends our challenge back, hoping we answer it for it, and then
// replays our answer as its own proof, is refused: at once for the repeated
// nonce, and even with another nonce, since proofs carry the role's label.
TEST(HandshakeTest, ReflectedChallengeIsRefused) {
  absl::StatusOr<Handshake> w = Handshake::Start(AuthRole::kWorker, "k", "p");
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(w->Prove(w->hello()).status()));

  absl::StatusOr<Handshake> victim = Handshake::Start(AuthRole::kWorker, "k", "p");
  absl::StatusOr<Handshake> other = Handshake::Start(AuthRole::kWorker, "k", "p");
  ASSERT_TRUE(victim.ok() && other.ok());
  // The attacker gets `other` (a worker) to answer the victim's challenge.
  absl::StatusOr<std::string> worker_proof = other->Prove(victim->hello());
  ASSERT_TRUE(worker_proof.ok());
  ASSERT_TRUE(victim->Prove(other->hello()).ok());
  EXPECT_EQ(victim->Judge(*worker_proof), "N");
}

TEST(HandshakeTest, MissingOrGarbledVerdictIsARefusal) {
  absl::StatusOr<Handshake> p = Handshake::Start(AuthRole::kParent, "k", "w");
  absl::StatusOr<Handshake> w = Handshake::Start(AuthRole::kWorker, "k", "p");
  ASSERT_TRUE(p.ok() && w.ok());
  absl::StatusOr<std::string> w_proof = w->Prove(p->hello());
  ASSERT_TRUE(p->Prove(w->hello()).ok());
  ASSERT_TRUE(w_proof.ok());
  EXPECT_EQ(p->Judge(*w_proof), "Y");
  EXPECT_TRUE(absl::IsPermissionDenied(p->Finish("")));
  EXPECT_TRUE(absl::IsPermissionDenied(p->Finish("?")));
  EXPECT_TRUE(p->Finish("Y").ok());
}

}  // namespace
}  // namespace auth
}  // namespace procpool
