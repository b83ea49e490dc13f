import GatewayCore
import NIOHTTP1
import XCTest

final class TokenExtractorTests: XCTestCase {
    let all = TokenExtractor(sources: [.query("access_token"), .cookie("sse_token"), .header("Authorization")])

    func token(_ query: String?, _ headers: [(String, String)] = []) -> String? {
        all.token(query: query.map { Substring($0) }, headers: HTTPHeaders(headers))?.token
    }

    // MARK: query

    func testQueryTokenIsFoundAndStrippedKeepingOtherParametersByteForByte() {
        let query = "b=%2Fx%20y&access_token=abc.def.ghi&a=1+2&z"
        XCTAssertEqual(token(query), "abc.def.ghi")
        XCTAssertEqual(all.strippedQuery(Substring(query)), "b=%2Fx%20y&a=1+2&z")
    }

    func testPercentEncodedNameMatchesAndIsStripped() {
        XCTAssertEqual(token("access%5Ftoken=t1"), "t1")
        XCTAssertEqual(token("access%5ftoken=t1"), "t1")
        XCTAssertEqual(all.strippedQuery("access%5Ftoken=t1&x=1"), "x=1")
    }

    func testPercentEncodedValueIsDecodedAndPlusIsSpace() {
        XCTAssertEqual(token("access_token=a%2Bb%3D"), "a+b=")
        XCTAssertEqual(token("access_token=a+b"), "a b")
        XCTAssertEqual(token("access_token=%zz"), "%zz", "an invalid escape stays literal")
    }

    func testRepeatedParameterFirstWinsAndAllCopiesStripped() {
        let query = "access_token=first&x=1&access_token=second&access_token="
        XCTAssertEqual(token(query), "first")
        XCTAssertEqual(all.strippedQuery(Substring(query)), "x=1")
    }

    func testEmptyValueIsAbsentAndTheNextSourceIsTried() {
        XCTAssertNil(token("access_token="))
        XCTAssertNil(token("access_token"))
        XCTAssertEqual(token("access_token=", [("Cookie", "sse_token=c")]), "c")
        XCTAssertEqual(token("access_token=&access_token=second"), "second")
        XCTAssertNil(all.strippedQuery("access_token="), "nothing left means no query at all")
    }

    func testQueryIsSplitOnBytesAsUpstreamsSplitIt() {
        // "=" or "&" followed by a combining mark is one Character: split on Characters, "access_token=\u{301}t" had
        // no "=" and was left in the query, though an upstream splitting bytes sees the parameter access_token.
        XCTAssertEqual(token("access_token=\u{301}t"), "\u{301}t")
        XCTAssertEqual(all.strippedQuery("x=1&access_token=\u{301}t"), "x=1")
        XCTAssertEqual(all.strippedQuery("access_token=t&\u{301}y=2"), "\u{301}y=2", "the next parameter stays")
        XCTAssertEqual(token("x=\u{301}&access_token=t"), "t")
    }

    func testQueryWithoutTokenIsReturnedUnchanged() {
        let query = "a=1&&b=%41&c=="
        XCTAssertEqual(all.strippedQuery(Substring(query)), query)
        XCTAssertNil(all.strippedQuery(nil))
        XCTAssertNil(all.strippedQuery(""))
    }

    func testNamesAreCaseSensitiveAndPrefixesDoNotMatch() {
        XCTAssertNil(token("Access_Token=x&access_token_x=y&xaccess_token=z"))
        XCTAssertEqual(all.strippedQuery("Access_Token=x&access_token_x=y"), "Access_Token=x&access_token_x=y")
    }

    // MARK: cookies

    func testCookieWithSpacesAndQuotes() {
        XCTAssertEqual(token(nil, [("Cookie", "a=1;sse_token=\"q.u.oted\"; b=2")]), "q.u.oted")
        XCTAssertEqual(token(nil, [("Cookie", "  sse_token =  spaced  ;b=2")]), "spaced")
        XCTAssertNil(token(nil, [("Cookie", "sse_token=; sse_token=\"\"")]))
    }

    func testCookieFoundInSecondCookieHeaderAndStrippedEverywhere() {
        var headers = HTTPHeaders([
            ("Cookie", "a=1; b=\"two\""), ("Cookie", "sse_token=t; c=3"), ("X-Other", "v"), ("Cookie", "sse_token=u"),
        ])
        XCTAssertEqual(all.token(query: nil, headers: headers)?.token, "t")
        all.strip(&headers)
        XCTAssertEqual(headers["cookie"], ["a=1; b=\"two\"", "c=3"])
        XCTAssertEqual(headers["X-Other"], ["v"])
    }

    func testCommasNeverSplitACookieHeader() {
        var headers = HTTPHeaders([("Cookie", "list=a,b; sse_token=t,u; z=\"1,2\"")])
        XCTAssertEqual(all.token(query: nil, headers: headers)?.token, "t,u")
        all.strip(&headers)
        XCTAssertEqual(headers["Cookie"], ["list=a,b; z=\"1,2\""])
    }

    func testCookieHeaderWithoutTokenKeepsItsExactBytes() {
        var headers = HTTPHeaders([("Cookie", "a=1;b=2 ;  c=3")])
        all.strip(&headers)
        XCTAssertEqual(headers["Cookie"], ["a=1;b=2 ;  c=3"])
    }

    func testCookieNamePrefixDoesNotMatch() {
        var headers = HTTPHeaders([("Cookie", "sse_token_old=x; xsse_token=y")])
        XCTAssertNil(all.token(query: nil, headers: headers))
        all.strip(&headers)
        XCTAssertEqual(headers["Cookie"], ["sse_token_old=x; xsse_token=y"])
    }

    // MARK: header

    func testBearerSchemeIsCaseInsensitive() {
        XCTAssertEqual(token(nil, [("Authorization", "bearer abc")]), "abc")
        XCTAssertEqual(token(nil, [("authorization", "BEARER   abc  ")]), "abc")
        XCTAssertNil(token(nil, [("Authorization", "Basic dXNlcjpwYXNz")]))
        XCTAssertNil(token(nil, [("Authorization", "Bearer")]))
        XCTAssertNil(token(nil, [("Authorization", "Bearerabc")]))
    }

    func testSourcesAreTriedInConfiguredOrder() {
        let headers: [(String, String)] = [("Authorization", "Bearer h"), ("Cookie", "sse_token=c")]
        XCTAssertEqual(
            all.token(query: "access_token=q", headers: HTTPHeaders(headers))?.source,
            .query("access_token")
        )
        XCTAssertEqual(token("access_token=q", headers), "q")
        XCTAssertEqual(token(nil, headers), "c")
        let headerFirst = TokenExtractor(sources: [.header("Authorization"), .query("access_token")])
        XCTAssertEqual(headerFirst.token(query: "access_token=q", headers: HTTPHeaders(headers))?.token, "h")
    }

    func testEveryConfiguredSourceIsStrippedNotOnlyTheOneUsed() {
        var headers = HTTPHeaders([("Authorization", "Bearer h"), ("Cookie", "sse_token=c; keep=1")])
        all.strip(&headers)
        XCTAssertFalse(headers.contains(name: "Authorization"))
        XCTAssertEqual(headers["Cookie"], ["keep=1"])
        XCTAssertEqual(all.strippedQuery("access_token=q&keep=2"), "keep=2")
    }

    func testMissingTokenIsRejectedWithBareChallenge() throws {
        let outcome = try Policies.jwt().authenticate(query: "x=1", headers: HTTPHeaders(), now: TestKeys.now)
        XCTAssertEqual(outcome.reason, .missing)
        XCTAssertEqual(outcome.failure?.gatewayError, .missingToken())
        XCTAssertEqual(outcome.failure?.gatewayError.status, .unauthorized)
        XCTAssertEqual(outcome.failure?.wwwAuthenticate, #"Bearer realm="sse-gateway""#)
    }
}
